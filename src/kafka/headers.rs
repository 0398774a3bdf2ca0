//! Record headers with their names as bytes. rdkafka's safe API takes and
//! gives header names as `&str` and panics on a name that is not UTF-8;
//! Kafka header names are bytes on the wire, and a backup keeps them byte
//! for byte, so headers go through librdkafka's C calls here.

use std::ffi::{CStr, c_char, c_void};

use rdkafka::bindings as rdsys;
use rdkafka::message::{BorrowedMessage, OwnedHeaders};

/// The headers of `m` in order (duplicates and null values kept), borrowed
/// from the message.
pub fn borrowed<'m>(m: &'m BorrowedMessage<'_>) -> Vec<(&'m [u8], Option<&'m [u8]>)> {
    let mut native = std::ptr::null_mut();
    // SAFETY: `m.ptr()` is a live message for the lifetime of `m`; the
    // headers it gives belong to the message and live as long as it does
    let err = unsafe { rdsys::rd_kafka_message_headers(m.ptr(), &mut native) };
    if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || native.is_null() {
        return Vec::new();
    }
    let count = unsafe { rdsys::rd_kafka_header_cnt(native) };
    let mut out = Vec::with_capacity(count);
    for idx in 0..count {
        let mut name: *const c_char = std::ptr::null();
        let mut value: *const c_void = std::ptr::null();
        let mut size = 0usize;
        // SAFETY: `idx` is below the count; librdkafka points `name` at a
        // NUL-terminated copy of the name and `value` at `size` bytes (or
        // null), both owned by the headers of `m`
        let err = unsafe {
            rdsys::rd_kafka_header_get_all(native, idx, &mut name, &mut value, &mut size)
        };
        if err != rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR || name.is_null() {
            continue;
        }
        let name = unsafe { CStr::from_ptr(name) }.to_bytes();
        let value = (!value.is_null())
            .then(|| unsafe { std::slice::from_raw_parts(value.cast::<u8>(), size) });
        out.push((name, value));
    }
    out
}

/// The headers of `m`, owned.
pub fn read(m: &BorrowedMessage<'_>) -> Vec<(Vec<u8>, Option<Vec<u8>>)> {
    borrowed(m)
        .into_iter()
        .map(|(n, v)| (n.to_vec(), v.map(<[u8]>::to_vec)))
        .collect()
}

/// Headers for a produced record, names as given (any bytes).
pub fn owned(headers: &[(Vec<u8>, Option<Vec<u8>>)]) -> OwnedHeaders {
    let out = OwnedHeaders::new_with_capacity(headers.len());
    // rdkafka hands out the native pointer only as the address of its
    // zero-sized `BorrowedHeaders` (which is how it reads them itself)
    let native = std::ptr::from_ref(out.as_borrowed())
        .cast::<rdsys::rd_kafka_headers_t>()
        .cast_mut();
    for (name, value) in headers {
        let (value_ptr, value_len) = match value {
            Some(v) => (v.as_ptr().cast::<c_void>(), v.len() as isize),
            None => (std::ptr::null(), 0),
        };
        // SAFETY: `native` is the headers object `out` owns, writable (made
        // by `rd_kafka_headers_new`); librdkafka copies name and value
        let err = unsafe {
            rdsys::rd_kafka_header_add(
                native,
                name.as_ptr().cast::<c_char>(),
                name.len() as isize,
                value_ptr,
                value_len,
            )
        };
        assert_eq!(
            err,
            rdsys::rd_kafka_resp_err_t::RD_KAFKA_RESP_ERR_NO_ERROR,
            "adding a header to headers made for producing"
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use rdkafka::message::Headers;

    use super::*;

    #[test]
    fn names_that_are_not_utf8_and_null_values_are_kept() {
        let given = vec![
            (b"trace".to_vec(), Some(b"t1".to_vec())),
            (vec![0xff, 0xfe, b'x'], Some(vec![0, 1, 2])),
            (b"trace".to_vec(), None),
            (Vec::new(), Some(Vec::new())),
        ];
        let h = owned(&given);
        assert_eq!(h.count(), 4);
        let native = std::ptr::from_ref(h.as_borrowed()).cast::<rdsys::rd_kafka_headers_t>();
        for (idx, (name, value)) in given.iter().enumerate() {
            let mut n: *const c_char = std::ptr::null();
            let mut v: *const c_void = std::ptr::null();
            let mut size = 0usize;
            unsafe { rdsys::rd_kafka_header_get_all(native, idx, &mut n, &mut v, &mut size) };
            assert_eq!(unsafe { CStr::from_ptr(n) }.to_bytes(), &name[..]);
            let got = (!v.is_null())
                .then(|| unsafe { std::slice::from_raw_parts(v.cast::<u8>(), size) }.to_vec());
            assert_eq!(&got, value);
        }
    }
}
