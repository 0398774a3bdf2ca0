#!/usr/bin/env python3
"""Independent-client round trip for kafka-backup's end-to-end tests.

Produces and consumes Schema-Registry-framed records with the real Python
`confluent-kafka` serializers (pinned in scripts/requirements.txt), so that the
Rust tests can check that a backup + restore into a registry with other schema
ids still decodes to the same values.

    confluent_roundtrip.py produce --bootstrap H:P --registry URL --topic T
        --format avro|json|protobuf --count N [--partitions P] [--timeout-secs 30]
        [--subject-strategy topic|record|topic_record|associated] [--proto-as-text]
        [--no-references]
    confluent_roundtrip.py consume --bootstrap H:P --registry URL --topic T
        --format avro|json|protobuf --count N [--timeout-secs 30]
        [--subject-strategy ...] [--proto-as-text] [--no-references]

`produce` prints {"produced", "schema_ids", "v2_from", "schemas", "reference_subjects",
"elapsed_secs"}; `consume` prints {"records": [{"partition", "offset", "key", "value",
"schema_id"}, ...], "elapsed_secs"} sorted by (partition, offset); each as one JSON
document on stdout. Errors go to stderr, one `error: ...` line, exit code 1 (2 for an
unexpected exception, with its traceback). README.md beside this file describes the
schemas, their references, the record contents and `--proto-as-text`.
"""

import argparse
import json
import struct
import sys
import time
import uuid

FORMATS = ("avro", "json", "protobuf")
STRATEGIES = {
    "topic": "TOPIC",
    "record": "RECORD",
    "topic_record": "TOPIC_RECORD",
    "associated": "ASSOCIATED",
}


class Failure(Exception):
    """An expected failure: its message is printed to stderr, exit code 1."""


def fail(msg):
    raise Failure(msg)


# --------------------------------------------------------------------------------------
# Deterministic content
# --------------------------------------------------------------------------------------


def v2_start(count):
    """Index of the first record written with schema version 2 (the last quarter)."""
    if count < 2:
        return count
    return count - max(1, count // 4)


def record(i, v2):
    """Record i as a plain dict (the JSON / Avro value; protobuf mirrors it)."""
    value = {
        "id": i,
        "name": f"name-{i}",
        "amount": i * 1.5,
        "tags": [f"red-{i % 3}", f"blue-{i % 5}"][: 1 + i % 2],
        "address": {"street": f"{i} Main Street", "city": f"city-{i % 7}"},
    }
    if v2:
        value["note"] = f"note-{i}"
    return value


def key(i):
    return f"key-{i}"


# --------------------------------------------------------------------------------------
# Avro: `kb.test.Address` is its own subject, referenced by name from kb.test.Payment
# --------------------------------------------------------------------------------------

AVRO_ADDRESS_SUBJECT = "kb.test.Address"
AVRO_ADDRESS = {
    "type": "record",
    "name": "Address",
    "namespace": "kb.test",
    "fields": [
        {"name": "street", "type": "string"},
        {"name": "city", "type": "string"},
    ],
}


def avro_payment(v2, inline=False):
    """kb.test.Payment; with `inline` (--no-references) Address is defined in place."""
    fields = [
        {"name": "id", "type": "long"},
        {"name": "name", "type": "string"},
        {"name": "amount", "type": "double"},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "address", "type": AVRO_ADDRESS if inline else "kb.test.Address"},
    ]
    if v2:
        fields.append({"name": "note", "type": ["null", "string"], "default": None})
    return {"type": "record", "name": "Payment", "namespace": "kb.test", "fields": fields}


# --------------------------------------------------------------------------------------
# JSON Schema: the main schema `$ref`s "address.json", a reference to its own subject
# --------------------------------------------------------------------------------------

JSON_ADDRESS_SUBJECT = "address.json"
JSON_ADDRESS = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "title": "Address",
    "type": "object",
    "properties": {
        "street": {"type": "string"},
        "city": {"type": "string"},
    },
    "required": ["street", "city"],
    "additionalProperties": False,
}


def json_payment(v2, inline=False):
    """Payment; with `inline` (--no-references) the address schema is written in place."""
    address = {k: v for k, v in JSON_ADDRESS.items() if k != "$schema"}
    props = {
        "id": {"type": "integer"},
        "name": {"type": "string"},
        "amount": {"type": "number"},
        "tags": {"type": "array", "items": {"type": "string"}},
        "address": address if inline else {"$ref": "address.json"},
    }
    if v2:
        # A new optional property in a closed content model: backward compatible.
        props["note"] = {"type": "string"}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": "Payment",
        "type": "object",
        "properties": props,
        "required": ["id", "name", "amount", "tags", "address"],
        "additionalProperties": False,
    }


# --------------------------------------------------------------------------------------
# Protobuf: kb/test/payment.proto imports kb/test/address.proto (built without protoc)
# --------------------------------------------------------------------------------------

PROTO_ADDRESS_FILE = "kb/test/address.proto"
PROTO_PAYMENT_FILE = "kb/test/payment.proto"


def proto_classes(v2, inline=False):
    """(Payment class, Address class) built in a fresh pool for schema version 1 or 2; with
    `inline` (--no-references) both messages are in kb/test/payment.proto, Payment first."""
    from google.protobuf import descriptor_pb2, descriptor_pool
    from google.protobuf.message_factory import GetMessageClass

    F = descriptor_pb2.FieldDescriptorProto
    payment = descriptor_pb2.FileDescriptorProto(
        name=PROTO_PAYMENT_FILE, package="kb.test", syntax="proto3",
        dependency=[] if inline else [PROTO_ADDRESS_FILE],
    )
    address = payment if inline else descriptor_pb2.FileDescriptorProto(
        name=PROTO_ADDRESS_FILE, package="kb.test", syntax="proto3"
    )

    msg = payment.message_type.add(name="Payment")
    msg.field.add(name="id", number=1, type=F.TYPE_INT64, label=F.LABEL_OPTIONAL, json_name="id")
    msg.field.add(name="name", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, json_name="name")
    msg.field.add(name="amount", number=3, type=F.TYPE_DOUBLE, label=F.LABEL_OPTIONAL, json_name="amount")
    msg.field.add(name="tags", number=4, type=F.TYPE_STRING, label=F.LABEL_REPEATED, json_name="tags")
    msg.field.add(
        name="address",
        number=5,
        type=F.TYPE_MESSAGE,
        type_name=".kb.test.Address",
        label=F.LABEL_OPTIONAL,
        json_name="address",
    )
    if v2:
        msg.field.add(name="note", number=6, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, json_name="note")

    msg = address.message_type.add(name="Address")
    msg.field.add(name="street", number=1, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, json_name="street")
    msg.field.add(name="city", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL, json_name="city")

    pool = descriptor_pool.DescriptorPool()
    if not inline:
        pool.Add(address)
    pool.Add(payment)
    return (
        GetMessageClass(pool.FindMessageTypeByName("kb.test.Payment")),
        GetMessageClass(pool.FindMessageTypeByName("kb.test.Address")),
    )


def proto_message(classes, value):
    payment_cls, address_cls = classes
    msg = payment_cls(
        id=value["id"],
        name=value["name"],
        amount=value["amount"],
        tags=value["tags"],
        address=address_cls(**value["address"]),
    )
    if "note" in value:
        msg.note = value["note"]
    return msg


def proto_to_json(msg):
    from google.protobuf.json_format import MessageToDict

    # Every field printed (proto3 defaults included) so that both sides show the same keys;
    # int64 stays a JSON string, as the ProtoJSON mapping says.
    return MessageToDict(msg, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


_AVRO_WRITERS = {}


def avro_check_whole(client, data):
    """Fails when the writer schema that the registry holds under the record's id does not
    read the whole value (an Avro decoder stops silently before trailing bytes, so a wrong
    schema can decode to a plausible value)."""
    import io

    from fastavro import schemaless_reader

    from confluent_kafka.schema_registry._sync.avro import _resolve_named_schema
    from confluent_kafka.schema_registry.common.avro import parse_schema_with_repo

    sid = framed_schema_id(data)
    if sid is None:
        return
    parsed = _AVRO_WRITERS.get(sid)
    if parsed is None:
        schema = client.get_schema(sid)
        parsed = parse_schema_with_repo(schema.schema_str, _resolve_named_schema(schema, client))
        _AVRO_WRITERS[sid] = parsed
    buf = io.BytesIO(data[5:])
    schemaless_reader(buf, parsed, None)
    left = len(data) - 5 - buf.tell()
    if left:
        fail(f"the writer schema {sid} left {left} of {len(data) - 5} byte(s) unread: "
             "it is not the schema the record was written with")


def proto_check_known(msg):
    """Fails on fields the writer schema does not declare (a wrong schema under the id)."""
    from google.protobuf.unknown_fields import UnknownFieldSet

    unknown = UnknownFieldSet(msg)
    if len(unknown):
        numbers = sorted({f.field_number for f in unknown})
        fail(f"{msg.DESCRIPTOR.full_name} has field number(s) {numbers} that the writer schema "
             "does not declare: it is not the schema the record was written with")
    for field, value in msg.ListFields():
        if field.message_type is not None:
            for item in (value if field.is_repeated else [value]):
                proto_check_known(item)


_WRITER_CLASSES = {}


def proto_writer_decode(client, data, ctx):
    """Parses a framed protobuf value with the message type its writer schema names."""
    from google.protobuf.descriptor_pool import DescriptorPool
    from google.protobuf.message_factory import GetMessageClass

    from confluent_kafka.schema_registry import dual_schema_id_deserializer
    from confluent_kafka.schema_registry.serde import SchemaId
    from confluent_kafka.schema_registry._sync.protobuf import _resolve_named_schema
    from confluent_kafka.schema_registry.common.protobuf import _init_pool, _str_to_proto

    sid = SchemaId("PROTOBUF")
    payload = dual_schema_id_deserializer(data, ctx, sid)
    indexes = tuple(sid.message_indexes or [0])
    cache_key = (sid.id, indexes)
    cls = _WRITER_CLASSES.get(cache_key)
    if cls is None:
        schema = client.get_schema(sid.id, None, "serialized")
        pool = DescriptorPool()
        _init_pool(pool)
        _resolve_named_schema(schema, client, pool)
        fd_proto = _str_to_proto("writer-%d.proto" % sid.id, schema.schema_str)
        pool.Add(fd_proto)
        names, level = [], fd_proto.message_type
        for idx in indexes:
            if idx >= len(level):
                fail(f"message index {list(indexes)} is not in the writer schema {sid.id}")
            names.append(level[idx].name)
            level = level[idx].nested_type
        full = ".".join(([fd_proto.package] if fd_proto.package else []) + names)
        cls = GetMessageClass(pool.FindMessageTypeByName(full))
        _WRITER_CLASSES[cache_key] = cls
    return cls.FromString(payload.read())


def proto_text(fd):
    """`.proto` text of a FileDescriptorProto of the shape built above (messages of plain
    fields): what Confluent's registry stores when a client submits the descriptor."""
    from google.protobuf import descriptor_pb2

    F = descriptor_pb2.FieldDescriptorProto
    scalar = {
        F.TYPE_DOUBLE: "double", F.TYPE_FLOAT: "float", F.TYPE_INT64: "int64", F.TYPE_UINT64: "uint64",
        F.TYPE_INT32: "int32", F.TYPE_FIXED64: "fixed64", F.TYPE_FIXED32: "fixed32", F.TYPE_BOOL: "bool",
        F.TYPE_STRING: "string", F.TYPE_BYTES: "bytes", F.TYPE_UINT32: "uint32", F.TYPE_SFIXED32: "sfixed32",
        F.TYPE_SFIXED64: "sfixed64", F.TYPE_SINT32: "sint32", F.TYPE_SINT64: "sint64",
    }
    lines = [f'syntax = "{fd.syntax or "proto2"}";', f"package {fd.package};", ""]
    lines += [f'import "{dep}";' for dep in fd.dependency]
    for msg in fd.message_type:
        if msg.nested_type or msg.enum_type or msg.oneof_decl:
            fail(f"proto_text: message {msg.name} has nested types/oneofs, not supported")
        lines += ["", f"message {msg.name} {{"]
        for f in msg.field:
            typ = f.type_name.lstrip(".") if f.type in (F.TYPE_MESSAGE, F.TYPE_ENUM) else scalar[f.type]
            label = "repeated " if f.label == F.LABEL_REPEATED else ""
            lines.append(f"  {label}{typ} {f.name} = {f.number};")
        lines.append("}")
    return "\n".join(lines) + "\n"


class ProtoTextRegistryClient:
    """Opt-in (`--proto-as-text`) stand-in for registries that only take `.proto` text
    (tests/registry and Confluent take descriptors; see README.md).

    The Python ProtobufSerializer submits schemas as a base64 FileDescriptorProto and the
    serdes read them back with `?format=serialized`. Confluent's registry accepts both and
    stores `.proto` text; a registry that only understands `.proto` text rejects the
    former and ignores the latter. This wrapper does Confluent's conversion on the client
    side: base64 descriptors of the known files (address, payment v1 / v2) are submitted as
    their `.proto` text, and `.proto` text read with fmt="serialized" is mapped back to the
    known descriptor with the same text (whitespace-insensitive). Unknown text fails."""

    def __init__(self, inner):
        import base64

        self._inner = inner
        self._to_text = {}
        self._to_b64 = {}
        for v2 in (False, True):
            payment_cls, address_cls = proto_classes(v2)
            for fd in (address_cls.DESCRIPTOR.file, payment_cls.DESCRIPTOR.file):
                from google.protobuf import descriptor_pb2

                proto = descriptor_pb2.FileDescriptorProto()
                fd.CopyToProto(proto)
                b64 = base64.standard_b64encode(fd.serialized_pb).decode("ascii")
                text = proto_text(proto)
                self._to_text[b64] = text
                self._to_b64[" ".join(text.split())] = b64

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def _text(self, schema):
        import attr

        if schema.schema_type == "PROTOBUF" and schema.schema_str in self._to_text:
            return attr.evolve(schema, schema_str=self._to_text[schema.schema_str])
        return schema

    def _serialized(self, schema, fmt):
        import attr

        if fmt != "serialized" or schema.schema_type != "PROTOBUF":
            return schema
        key = " ".join((schema.schema_str or "").split())
        if key not in self._to_b64:
            fail(f"--proto-as-text: the registry returned .proto text this helper did not write:\n"
                 f"{schema.schema_str}")
        return attr.evolve(schema, schema_str=self._to_b64[key])

    def _registered(self, rs, fmt):
        import attr

        return attr.evolve(rs, schema=self._serialized(rs.schema, fmt))

    def register_schema(self, subject_name, schema, normalize_schemas=False):
        return self._inner.register_schema(subject_name, self._text(schema), normalize_schemas)

    def register_schema_full_response(self, subject_name, schema, normalize_schemas=False):
        return self._inner.register_schema_full_response(subject_name, self._text(schema), normalize_schemas)

    def lookup_schema(self, subject_name, schema, normalize_schemas=False, fmt=None, deleted=False):
        rs = self._inner.lookup_schema(subject_name, self._text(schema), normalize_schemas, None, deleted)
        return self._registered(rs, fmt)

    def get_schema(self, schema_id, subject_name=None, fmt=None, reference_format=None):
        return self._serialized(self._inner.get_schema(schema_id, subject_name, None, reference_format), fmt)

    def get_latest_version(self, subject_name, fmt=None):
        return self._registered(self._inner.get_latest_version(subject_name, None), fmt)

    def get_version(self, subject_name, version="latest", deleted=False, fmt=None):
        return self._registered(self._inner.get_version(subject_name, version, deleted, None), fmt)


# --------------------------------------------------------------------------------------
# Shared helpers
# --------------------------------------------------------------------------------------


def registry_client(args):
    from confluent_kafka.schema_registry import SchemaRegistryClient

    client = SchemaRegistryClient({"url": args.registry})
    if args.format == "protobuf" and args.proto_as_text:
        return ProtoTextRegistryClient(client)
    return client


def serde_conf(args, **extra):
    conf = {"subject.name.strategy.type": STRATEGIES[args.subject_strategy]}
    conf.update(extra)
    return conf


def framed_schema_id(data):
    """The schema id of Confluent's framing (magic byte 0, 4-byte big-endian id), or None."""
    if data is None or len(data) < 5 or data[0] != 0:
        return None
    return struct.unpack(">I", data[1:5])[0]


def versions_or_none(client, subject):
    from confluent_kafka.schema_registry.error import SchemaRegistryError

    try:
        return client.get_versions(subject)
    except SchemaRegistryError as e:
        if e.http_status_code == 404:
            return None
        raise


def ensure_topic(bootstrap, topic, partitions):
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=1)])
    try:
        futures[topic].result(30)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            fail(f"creating topic {topic} with {partitions} partition(s) failed: {e}")


# --------------------------------------------------------------------------------------
# produce
# --------------------------------------------------------------------------------------


def build_serializers(args, client):
    """[(serializer of v1, to_value), (serializer of v2, to_value)], [referenced subjects]."""
    from confluent_kafka.schema_registry import Schema, SchemaReference

    fmt = args.format
    conf = serde_conf(args, **{"auto.register.schemas": True})
    if args.no_references:
        return build_serializers_inline(args, client, conf)
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroSerializer

        # The serializer registers the main schema but not the named types it references:
        # register Address under its own subject first, then reference it by full name.
        client.register_schema(AVRO_ADDRESS_SUBJECT, Schema(json.dumps(AVRO_ADDRESS), "AVRO"))
        ref = client.lookup_schema(AVRO_ADDRESS_SUBJECT, Schema(json.dumps(AVRO_ADDRESS), "AVRO"))
        refs = [SchemaReference("kb.test.Address", AVRO_ADDRESS_SUBJECT, ref.version)]
        out = []
        for v2 in (False, True):
            schema = Schema(json.dumps(avro_payment(v2)), "AVRO", refs)
            out.append((AvroSerializer(client, schema, conf=conf), lambda value: value))
        return out, [AVRO_ADDRESS_SUBJECT]
    if fmt == "json":
        from confluent_kafka.schema_registry.json_schema import JSONSerializer

        client.register_schema(JSON_ADDRESS_SUBJECT, Schema(json.dumps(JSON_ADDRESS), "JSON"))
        ref = client.lookup_schema(JSON_ADDRESS_SUBJECT, Schema(json.dumps(JSON_ADDRESS), "JSON"))
        refs = [SchemaReference("address.json", JSON_ADDRESS_SUBJECT, ref.version)]
        out = []
        for v2 in (False, True):
            schema = Schema(json.dumps(json_payment(v2)), "JSON", refs)
            out.append((JSONSerializer(schema, client, conf=conf), lambda value: value))
        return out, [JSON_ADDRESS_SUBJECT]
    if fmt == "protobuf":
        from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

        # The serializer registers the imported file itself, under the subject its
        # default reference.subject.name.strategy gives: the file name.
        out = []
        for v2 in (False, True):
            classes = proto_classes(v2)
            ser = ProtobufSerializer(classes[0], client, conf=conf)
            out.append((ser, lambda value, classes=classes: proto_message(classes, value)))
        return out, [PROTO_ADDRESS_FILE]
    fail(f"unknown format {fmt}")


def build_serializers_inline(args, client, conf):
    """build_serializers for --no-references: one self-contained schema per version."""
    from confluent_kafka.schema_registry import Schema

    fmt = args.format
    out = []
    for v2 in (False, True):
        if fmt == "avro":
            from confluent_kafka.schema_registry.avro import AvroSerializer

            schema = Schema(json.dumps(avro_payment(v2, inline=True)), "AVRO")
            out.append((AvroSerializer(client, schema, conf=conf), lambda value: value))
        elif fmt == "json":
            from confluent_kafka.schema_registry.json_schema import JSONSerializer

            schema = Schema(json.dumps(json_payment(v2, inline=True)), "JSON")
            out.append((JSONSerializer(schema, client, conf=conf), lambda value: value))
        elif fmt == "protobuf":
            from confluent_kafka.schema_registry.protobuf import ProtobufSerializer

            classes = proto_classes(v2, inline=True)
            ser = ProtobufSerializer(classes[0], client, conf=conf)
            out.append((ser, lambda value, classes=classes: proto_message(classes, value)))
        else:
            fail(f"unknown format {fmt}")
    return out, []


def produce(args):
    from confluent_kafka import Producer
    from confluent_kafka.serialization import MessageField, SerializationContext, StringSerializer

    if args.partitions:
        ensure_topic(args.bootstrap, args.topic, args.partitions)
    client = registry_client(args)
    try:
        serializers, ref_subjects = build_serializers(args, client)
    except Failure:
        raise
    except Exception as e:  # noqa: BLE001 - the registry or a schema: one clear line
        fail(f"setting up the {args.format} serializers against {args.registry} failed: {type(e).__name__}: {e}")
    key_ser = StringSerializer("utf_8")
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "linger.ms": 5})

    errors = []
    delivered = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"delivery of {msg.key()!r} to {msg.topic()} failed: {err}")
        else:
            delivered.append((msg.partition(), msg.offset()))

    vctx = SerializationContext(args.topic, MessageField.VALUE)
    kctx = SerializationContext(args.topic, MessageField.KEY)
    ids = set()
    first_v2 = v2_start(args.count)
    started = time.monotonic()
    for i in range(args.count):
        v2 = i >= first_v2
        ser, to_value = serializers[1 if v2 else 0]
        try:
            data = ser(to_value(record(i, v2)), vctx)
        except Exception as e:  # noqa: BLE001 - report any serializer failure the same way
            fail(f"serializing record {i} ({args.format}, schema v{2 if v2 else 1}) for {args.topic} failed: "
                 f"{type(e).__name__}: {e}")
        sid = framed_schema_id(data)
        if sid is None:
            fail(f"record {i}: the serializer wrote no Confluent framing: {data[:8]!r}")
        ids.add(sid)
        while True:
            try:
                producer.produce(args.topic, value=data, key=key_ser(key(i), kctx), on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.1)
        producer.poll(0)
        if errors:
            break
    remaining = producer.flush(args.timeout_secs)
    if errors:
        fail("; ".join(errors[:5]))
    if remaining or len(delivered) != args.count:
        fail(f"only {len(delivered)} of {args.count} records delivered to {args.topic} "
             f"({remaining} still queued after {args.timeout_secs}s)")

    # Where the registry holds each id written (for a test to look the subjects up), and the
    # versions of the subjects of the referenced schemas.
    schemas = {str(sid): [{"subject": sv.subject, "version": sv.version}
                          for sv in client.get_schema_versions(sid)] for sid in sorted(ids)}
    emit({
        "produced": len(delivered),
        "schema_ids": sorted(ids),
        "v2_from": first_v2,
        "schemas": schemas,
        "reference_subjects": {name: versions_or_none(client, name) for name in ref_subjects},
        "elapsed_secs": round(time.monotonic() - started, 3),
    })


# --------------------------------------------------------------------------------------
# consume
# --------------------------------------------------------------------------------------


def build_deserializer(args, client):
    fmt = args.format
    conf = serde_conf(args)
    if fmt == "avro":
        from confluent_kafka.schema_registry.avro import AvroDeserializer

        # No reader schema: the writer schema is fetched from the registry by the id.
        des = AvroDeserializer(client, None, conf=conf)

        def decode(data, ctx):
            value = des(data, ctx)
            avro_check_whole(client, data)
            return value

        return decode
    if fmt == "json":
        from confluent_kafka.schema_registry.json_schema import JSONDeserializer

        # No local schema: the writer schema (and its references) come from the registry
        # and the value is validated against it.
        des = JSONDeserializer(None, schema_registry_client=client, conf=conf)
        return lambda data, ctx: des(data, ctx)
    if fmt == "protobuf":
        from confluent_kafka.schema_registry.protobuf import ProtobufDeserializer

        # ProtobufDeserializer fetches the writer schema and resolves the message index in
        # it, but parses the bytes into the local class it was given (v2, a superset of v1).
        # So the value printed is parsed a second time with the message type of the writer
        # schema that this registry holds under the record's id: a restore that maps an id
        # to the wrong schema then shows (a v1 record decoded with v2 gains "note": "").
        des = ProtobufDeserializer(proto_classes(True, args.no_references)[0], conf, schema_registry_client=client)

        def decode(data, ctx):
            des(data, ctx)
            msg = proto_writer_decode(client, data, ctx)
            proto_check_known(msg)
            return proto_to_json(msg)

        return decode
    fail(f"unknown format {fmt}")


def consume(args):
    from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaException, TopicPartition
    from confluent_kafka.serialization import MessageField, SerializationContext

    client = registry_client(args)
    deserialize = build_deserializer(args, client)
    consumer = Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": f"kb-roundtrip-{uuid.uuid4()}",
        "auto.offset.reset": "earliest",
        "enable.auto.commit": False,
        "enable.partition.eof": False,
    })
    deadline = time.monotonic() + args.timeout_secs
    started = time.monotonic()
    try:
        partitions = None
        while partitions is None:
            try:
                meta = consumer.list_topics(args.topic, timeout=max(0.1, deadline - time.monotonic()))
            except KafkaException as e:
                fail(f"no metadata for {args.topic} from {args.bootstrap} within {args.timeout_secs}s: {e}")
            tmeta = meta.topics.get(args.topic)
            if tmeta is not None and tmeta.error is None and tmeta.partitions:
                partitions = sorted(tmeta.partitions)
            elif time.monotonic() >= deadline:
                err = tmeta.error if tmeta is not None else "not in metadata"
                fail(f"topic {args.topic} not found within {args.timeout_secs}s: {err}")
            else:
                time.sleep(0.2)
        consumer.assign([TopicPartition(args.topic, p, OFFSET_BEGINNING) for p in partitions])

        records = []
        while len(records) < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"only {len(records)} of {args.count} records arrived from {args.topic} "
                     f"within {args.timeout_secs}s")
            for msg in consumer.consume(num_messages=min(500, args.count - len(records)), timeout=min(left, 1.0)):
                if msg.error():
                    fail(f"consuming {args.topic} failed: {msg.error()}")
                where = f"topic {msg.topic()} partition {msg.partition()} offset {msg.offset()}"
                data = msg.value()
                try:
                    value = None if data is None else deserialize(
                        data, SerializationContext(msg.topic(), MessageField.VALUE, msg.headers()))
                except Exception as e:  # noqa: BLE001 - any decoding failure is the test's finding
                    fail(f"deserializing the value at {where} (schema id {framed_schema_id(data)}) "
                         f"against {args.registry} failed: {type(e).__name__}: {e}")
                raw_key = msg.key()
                try:
                    key_text = None if raw_key is None else raw_key.decode("utf-8")
                except UnicodeDecodeError:
                    fail(f"the key at {where} is not UTF-8: {raw_key!r}")
                records.append({
                    "partition": msg.partition(),
                    "offset": msg.offset(),
                    "key": key_text,
                    "value": value,
                    "schema_id": framed_schema_id(data),
                })
    finally:
        consumer.close()
    records.sort(key=lambda r: (r["partition"], r["offset"]))
    emit({"records": records, "elapsed_secs": round(time.monotonic() - started, 3)})


# --------------------------------------------------------------------------------------


def emit(doc):
    json.dump(doc, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    sys.stdout.flush()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("produce", "consume"):
        p = sub.add_parser(name)
        p.add_argument("--bootstrap", required=True, help="Kafka bootstrap HOST:PORT")
        p.add_argument("--registry", required=True, help="Schema Registry URL")
        p.add_argument("--topic", required=True)
        p.add_argument("--format", required=True, choices=FORMATS)
        p.add_argument("--count", required=True, type=int)
        p.add_argument("--subject-strategy", default="topic", choices=sorted(STRATEGIES),
                       help="subject.name.strategy.type of the serdes (default: topic)")
        p.add_argument("--timeout-secs", type=float, default=30.0)
        p.add_argument("--proto-as-text", action="store_true",
                       help="protobuf only: send/read schemas as .proto text instead of base64 descriptors, "
                            "for a registry without Confluent's descriptor support (see README.md); "
                            "not needed for tests/registry")
        p.add_argument("--no-references", action="store_true",
                       help="self-contained schemas: Address defined inside Payment (Avro, JSON) or "
                            "in the same .proto file (Protobuf), for registries without references "
                            "(Karapace before 6.1 has none for Avro and JSON Schema); see README.md")
        if name == "produce":
            p.add_argument("--partitions", type=int, default=0,
                           help="create the topic with this many partitions first (default: let the broker "
                                "auto-create it)")
    args = parser.parse_args(argv)
    if args.count < 0:
        parser.error("--count must be >= 0")
    try:
        (produce if args.command == "produce" else consume)(args)
    except Failure as e:
        print(f"error: {args.command} {args.format} {args.topic}: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - unexpected: still one clear line, then the trace
        import traceback

        traceback.print_exc()
        print(f"error: {args.command} {args.format} {args.topic}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
