"""Benchmark data for scripts/bench-backup and scripts/bench-incremental: records
of 1 KiB JSON-like values (fixed field names, enumerated strings and numbers from
a pool, and 192 fresh random bytes per record as hex: about 3:1 under zstd level
1), a key and a header, spread round-robin over the topic's partitions.

    bench_data.py BOOTSTRAP TOPIC MB [--partitions N] [--first I] [--compression C] [--no-create]

Creates the topic (unless --no-create), produces MB megabytes of values as records
--first, --first + 1, ... (keys and ids follow the record number, so a second call
with --first continues the first), and prints the number of records produced.
"""

import argparse
import os
import random
import sys

from confluent_kafka import Producer
from confluent_kafka.admin import AdminClient, NewTopic

VALUE = 1024


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("bootstrap")
    ap.add_argument("topic")
    ap.add_argument("mb", type=int)
    ap.add_argument("--partitions", type=int, default=4)
    ap.add_argument("--first", type=int, default=0)
    ap.add_argument("--compression", default="none")
    ap.add_argument("--no-create", action="store_true")
    args = ap.parse_args()

    if not args.no_create:
        admin = AdminClient({"bootstrap.servers": args.bootstrap})
        topic = NewTopic(args.topic, args.partitions, 1, config={"retention.ms": "-1"})
        for f in admin.create_topics([topic]).values():
            f.result()

    rng = random.Random(42)
    countries = ["DE", "FR", "US", "GB", "JP", "BR", "IN", "NG", "AU", "CA"]
    statuses = ["created", "paid", "shipped", "delivered", "returned"]
    words = ("order shipment customer invoice warehouse parcel express standard return "
             "refund priority gift fragile bulk pickup locker courier tracking").split()
    bodies = []
    for _ in range(8192):
        body = ('"customer":"cust-%06d","country":"%s","status":"%s","amount":%d.%02d,'
                '"currency":"EUR","items":%d,"note":"%s","payload":"' % (
                    rng.randrange(10**6), rng.choice(countries), rng.choice(statuses),
                    rng.randrange(10**5), rng.randrange(100), rng.randrange(1, 20),
                    " ".join(rng.choice(words) for _ in range(60)))).encode()
        bodies.append(body)

    records = args.mb * 1_000_000 // VALUE
    producer = Producer({"bootstrap.servers": args.bootstrap, "linger.ms": 20,
                         "batch.size": 1_000_000, "compression.type": args.compression,
                         "queue.buffering.max.kbytes": 1_048_576,
                         "queue.buffering.max.messages": 1_000_000,
                         "message.max.bytes": 10_000_000})
    failed = []

    def delivered(err, _msg):
        if err is not None:
            failed.append(err)

    for i in range(args.first, args.first + records):
        head = b'{"id":%d,' % i + bodies[i % len(bodies)]
        value = (head + os.urandom(192).hex().encode())[-(VALUE - 2):] + b'"}'
        while True:
            try:
                producer.produce(args.topic, key=b"order-%08d" % i, value=value,
                                 partition=i % args.partitions,
                                 headers=[("trace-id", b"%032x" % (i * 2654435761))],
                                 on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10000 == 0:
            producer.poll(0)
    producer.flush()
    if failed:
        sys.exit(f"{len(failed)} records failed, first: {failed[0]}")
    print(records)


if __name__ == "__main__":
    main()
