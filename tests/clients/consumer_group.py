#!/usr/bin/env python3
"""Independent consumer-group client for kafka-backup's end-to-end tests.

Writes plain records, reads them as a consumer group that commits what it read, and
looks at groups and partitions through the Admin API, all with the real Python
`confluent-kafka` (pinned in scripts/requirements.txt), so that the Rust tests can check
that a restored group resumes on the target where it stopped on the source.

    consumer_group.py produce --bootstrap H:P --topic T --partitions N --count K
        [--start S] [--timestamp-ms BASE]
    consumer_group.py consume --bootstrap H:P --topic T --group G --count K
        [--max-per-partition M | P=M,P=M] [--timeout-secs 30]
    consumer_group.py drain --bootstrap H:P --topic T --group G [--idle-ms 3000]
        [--reset earliest|latest] [--timeout-secs 60]
    consumer_group.py delete-records --bootstrap H:P --topic T --partition P --before O
    consumer_group.py hold --bootstrap H:P --topic T --group G --seconds S
    consumer_group.py committed --bootstrap H:P --group G --topic T --partitions N

Each prints one JSON document on stdout (`hold` prints its first as soon as the
group assigned it partitions). Errors go to stderr, one `error: ...` line, exit code 1
(2 for an unexpected exception, with its traceback). README.md beside this file
describes each command's output.
"""

import argparse
import json
import signal
import sys
import time


class Failure(Exception):
    """An expected failure: its message is printed to stderr, exit code 1."""


def fail(msg):
    raise Failure(msg)


def emit(doc):
    json.dump(doc, sys.stdout, sort_keys=True)
    sys.stdout.write("\n")
    sys.stdout.flush()


def value_of(i):
    return f"r-{i}"


def key_of(i):
    return f"k-{i}"


def decode(raw, what, msg):
    if raw is None:
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        fail(f"the {what} at {msg.topic()} partition {msg.partition()} offset {msg.offset()} "
             f"is not UTF-8: {raw!r}")


def admin(bootstrap):
    from confluent_kafka.admin import AdminClient

    return AdminClient({"bootstrap.servers": bootstrap})


def ensure_topic(bootstrap, topic, partitions):
    """Creates `topic` (replication factor 1, `retention.ms=-1`: the test broker enforces
    retention at once, and records may carry old timestamps) unless it exists; an existing
    topic must have `partitions` partitions."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import NewTopic

    client = admin(bootstrap)
    new = NewTopic(topic, num_partitions=partitions, replication_factor=1, config={"retention.ms": "-1"})
    try:
        client.create_topics([new])[topic].result(30)
    except KafkaException as e:
        if e.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            fail(f"creating topic {topic} with {partitions} partition(s) failed: {e}")
    have = partition_ids(client, topic, 30)
    if len(have) != partitions:
        fail(f"topic {topic} has {len(have)} partition(s), not {partitions}")


def partition_ids(client, topic, timeout_secs):
    """The partitions of `topic` (an AdminClient or a Consumer), waiting for metadata."""
    from confluent_kafka import KafkaException

    deadline = time.monotonic() + timeout_secs
    while True:
        try:
            meta = client.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
        except KafkaException as e:
            fail(f"no metadata for {topic} within {timeout_secs}s: {e}")
        tmeta = meta.topics.get(topic)
        if tmeta is not None and tmeta.error is None and tmeta.partitions:
            return sorted(tmeta.partitions)
        if time.monotonic() >= deadline:
            err = tmeta.error if tmeta is not None else "not in metadata"
            fail(f"topic {topic} not found within {timeout_secs}s: {err}")
        time.sleep(0.2)


def group_consumer(args, reset):
    from confluent_kafka import Consumer

    return Consumer({
        "bootstrap.servers": args.bootstrap,
        "group.id": args.group,
        "auto.offset.reset": reset,
        "enable.auto.commit": False,
        "enable.auto.offset.store": False,
        "enable.partition.eof": False,
        # the test broker ignores fetch size limits: one fetch may be a whole partition
        "receive.message.max.bytes": 2147483647,
    })


def commit_read(consumer, topic, last):
    """Commits, synchronously, the position after the last record read of each partition
    (`last`: {partition: offset}); gives {"<partition>": offset} as committed."""
    from confluent_kafka import KafkaException, TopicPartition

    if not last:
        return {}
    offsets = [TopicPartition(topic, p, o + 1) for p, o in sorted(last.items())]
    try:
        result = consumer.commit(offsets=offsets, asynchronous=False)
    except KafkaException as e:
        fail(f"committing {[(tp.partition, tp.offset) for tp in offsets]} on {topic} failed: {e}")
    for tp in result or []:
        if tp.error is not None:
            fail(f"committing {topic} partition {tp.partition} offset {tp.offset} failed: {tp.error}")
    return {str(p): o + 1 for p, o in sorted(last.items())}


def wait_assigned(consumer, assigned, deadline, what, on_message=None):
    """Polls until the group assigned partitions (`assigned`, filled by on_assign)."""
    while not assigned:
        if time.monotonic() >= deadline:
            fail(f"{what}: no partition assigned before the timeout")
        msg = consumer.poll(0.2)
        if msg is not None and on_message is not None:
            on_message(msg)


# --------------------------------------------------------------------------------------
# produce
# --------------------------------------------------------------------------------------


def produce(args):
    from confluent_kafka import Producer

    ensure_topic(args.bootstrap, args.topic, args.partitions)
    producer = Producer({"bootstrap.servers": args.bootstrap, "enable.idempotence": True, "linger.ms": 5})
    errors = []
    delivered = []

    def on_delivery(err, msg):
        if err is not None:
            errors.append(f"delivery of {msg.key()!r} to {msg.topic()} failed: {err}")
        else:
            delivered.append({
                "value": msg.value().decode(),
                "partition": msg.partition(),
                "offset": msg.offset(),
                "timestamp": msg.timestamp()[1],
            })

    for i in range(args.start, args.start + args.count):
        extra = {}
        if args.timestamp_ms is not None:
            extra["timestamp"] = args.timestamp_ms + i
        while True:
            try:
                producer.produce(args.topic, value=value_of(i), key=key_of(i),
                                 partition=i % args.partitions, on_delivery=on_delivery, **extra)
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
    delivered.sort(key=lambda r: (r["partition"], r["offset"]))
    emit({"produced": len(delivered), "records": delivered})


# --------------------------------------------------------------------------------------
# consume
# --------------------------------------------------------------------------------------


def parse_limits(text):
    """`--max-per-partition`: "M" (every partition) or "P=M,P=M" (the partitions named;
    the others unlimited). Gives (default, {partition: limit})."""
    if text is None:
        return None, {}
    if "=" not in text:
        return int(text), {}
    limits = {}
    for part in text.split(","):
        p, m = part.split("=", 1)
        limits[int(p)] = int(m)
    return None, limits


def consume(args):
    default, limits = parse_limits(args.max_per_partition)

    def limit(p):
        return limits.get(p, default)

    consumer = group_consumer(args, "earliest")
    assigned = []
    consumer.subscribe([args.topic], on_assign=lambda c, ps: assigned.extend(ps))
    deadline = time.monotonic() + args.timeout_secs
    read = []  # (partition, offset, value)
    counts = {}
    last = {}
    paused = set()

    def take(msg):
        if msg.error():
            fail(f"consuming {args.topic} as {args.group} failed: {msg.error()}")
        p = msg.partition()
        if len(read) >= args.count or (limit(p) is not None and counts.get(p, 0) >= limit(p)):
            # fetched, but beyond what this run reads: neither counted nor committed
            return
        counts[p] = counts.get(p, 0) + 1
        last[p] = msg.offset()
        read.append((p, msg.offset(), decode(msg.value(), "value", msg)))

    try:
        wait_assigned(consumer, assigned, deadline, f"consume {args.topic} as {args.group}", take)
        while len(read) < args.count:
            left = deadline - time.monotonic()
            if left <= 0:
                fail(f"only {len(read)} of {args.count} records arrived from {args.topic} as group "
                     f"{args.group} within {args.timeout_secs}s (per partition: {counts}, limits: "
                     f"{args.max_per_partition})")
            for msg in consumer.consume(num_messages=args.count - len(read), timeout=min(left, 0.5)):
                take(msg)
            full = {tp.partition for tp in assigned
                    if limit(tp.partition) is not None and counts.get(tp.partition, 0) >= limit(tp.partition)}
            if full - paused:
                from confluent_kafka import TopicPartition

                consumer.pause([TopicPartition(args.topic, p) for p in full - paused])
                paused |= full
        committed = commit_read(consumer, args.topic, last)
    finally:
        consumer.close()
    emit({
        "values": [v for _, _, v in read],
        "read": [{"partition": p, "offset": o, "value": v} for p, o, v in sorted(read)],
        "committed": committed,
    })


# --------------------------------------------------------------------------------------
# drain
# --------------------------------------------------------------------------------------


def drain(args):
    from confluent_kafka import TopicPartition

    consumer = group_consumer(args, args.reset)
    assigned = []
    consumer.subscribe([args.topic], on_assign=lambda c, ps: assigned.extend(ps))
    deadline = time.monotonic() + args.timeout_secs
    read = []
    last = {}
    last_record_at = [time.monotonic()]

    def take(msg):
        if msg.error():
            fail(f"draining {args.topic} as {args.group} failed: {msg.error()}")
        last[msg.partition()] = msg.offset()
        read.append((msg.partition(), msg.offset(), decode(msg.value(), "value", msg)))
        last_record_at[0] = time.monotonic()

    try:
        wait_assigned(consumer, assigned, deadline, f"drain {args.topic} as {args.group}", take)
        parts = sorted({tp.partition for tp in assigned})
        # Where the group starts on each partition: its committed offset, else where
        # auto.offset.reset sends it; and the high watermark it must reach.
        start_commits = {tp.partition: tp.offset for tp in consumer.committed(
            [TopicPartition(args.topic, p) for p in parts], timeout=30)}
        ends = {}
        starts = {}
        for p in parts:
            low, high = consumer.get_watermark_offsets(TopicPartition(args.topic, p), timeout=30)
            ends[p] = high
            c = start_commits.get(p, -1001)
            if low <= c <= high:
                starts[p] = c
            else:
                # none committed, or out of range: the reset policy applies
                starts[p] = low if args.reset == "earliest" else high
        last_record_at[0] = time.monotonic()
        idle = args.idle_ms / 1000.0
        while True:
            reached = all(max(starts[p], last.get(p, -1) + 1) >= ends[p] for p in parts)
            if reached and time.monotonic() - last_record_at[0] >= idle:
                break
            if time.monotonic() >= deadline:
                behind = {p: (max(starts[p], last.get(p, -1) + 1), ends[p]) for p in parts
                          if max(starts[p], last.get(p, -1) + 1) < ends[p]}
                fail(f"drain {args.topic} as {args.group}: after {args.timeout_secs}s these partitions are "
                     f"still short of their high watermark (at, end): {behind}; read {len(read)} record(s)")
            for msg in consumer.consume(num_messages=500, timeout=0.2):
                take(msg)
        commit_read(consumer, args.topic, last)
    finally:
        consumer.close()
    read.sort()
    by_partition = {}
    for p, _, v in read:
        by_partition.setdefault(str(p), []).append(v)
    emit({
        "values": [v for _, _, v in read],
        "by_partition": by_partition,
        "started_at": {str(p): (None if start_commits.get(p, -1001) < 0 else start_commits[p]) for p in parts},
        "high_watermarks": {str(p): ends[p] for p in parts},
    })


# --------------------------------------------------------------------------------------
# delete-records, committed
# --------------------------------------------------------------------------------------


def delete_records(args):
    from confluent_kafka import KafkaException, TopicPartition

    client = admin(args.bootstrap)
    tp = TopicPartition(args.topic, args.partition, args.before)
    try:
        result = client.delete_records([tp])[tp].result(30)
    except KafkaException as e:
        fail(f"deleting the records of {args.topic} partition {args.partition} before offset "
             f"{args.before} failed: {e}")
    emit({"low": result.low_watermark})


def committed(args):
    from confluent_kafka import ConsumerGroupTopicPartitions, KafkaException, TopicPartition

    client = admin(args.bootstrap)
    request = ConsumerGroupTopicPartitions(
        args.group, [TopicPartition(args.topic, p) for p in range(args.partitions)])
    try:
        result = client.list_consumer_group_offsets([request])[args.group].result(30)
    except KafkaException as e:
        fail(f"listing the offsets of group {args.group} on {args.topic} failed: {e}")
    out = {str(p): None for p in range(args.partitions)}
    for tp in result.topic_partitions:
        if tp.topic != args.topic:
            continue
        if tp.error is not None:
            fail(f"the offset of group {args.group} on {args.topic} partition {tp.partition}: {tp.error}")
        out[str(tp.partition)] = tp.offset if tp.offset >= 0 else None
    emit({"committed": out})


# --------------------------------------------------------------------------------------
# hold
# --------------------------------------------------------------------------------------


def hold(args):
    stop = []
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.append(signum))
    consumer = group_consumer(args, "latest")
    assigned = []
    consumer.subscribe([args.topic], on_assign=lambda c, ps: assigned.extend(ps))
    deadline = time.monotonic() + 30
    try:
        wait_assigned(consumer, assigned, deadline, f"hold {args.group} on {args.topic}")
        emit({"joined": True, "partitions": sorted(tp.partition for tp in assigned)})
        until = time.monotonic() + args.seconds
        while time.monotonic() < until and not stop:
            msg = consumer.poll(0.2)
            if msg is not None and msg.error():
                fail(f"holding {args.group} on {args.topic}: {msg.error()}")
    finally:
        # close() leaves the group: it is empty again at once, with nothing committed
        consumer.close()
    emit({"left": True, "stopped_by_signal": bool(stop)})


# --------------------------------------------------------------------------------------


COMMANDS = {
    "produce": produce,
    "consume": consume,
    "drain": drain,
    "delete-records": delete_records,
    "hold": hold,
    "committed": committed,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)

    def command(name, topic=True):
        p = sub.add_parser(name)
        p.add_argument("--bootstrap", required=True, help="Kafka bootstrap HOST:PORT")
        if topic:
            p.add_argument("--topic", required=True)
        return p

    p = command("produce")
    p.add_argument("--partitions", required=True, type=int,
                   help="create the topic with this many partitions when it is missing")
    p.add_argument("--count", required=True, type=int)
    p.add_argument("--start", type=int, default=0, help="index of the first record (default 0)")
    p.add_argument("--timestamp-ms", type=int, default=None,
                   help="record i gets the timestamp BASE + i (default: the producer's clock)")
    p.add_argument("--timeout-secs", type=float, default=30.0)

    p = command("consume")
    p.add_argument("--group", required=True)
    p.add_argument("--count", required=True, type=int)
    p.add_argument("--max-per-partition", default=None, metavar="M|P=M,...",
                   help="read at most M records of each partition, or of the partitions named")
    p.add_argument("--timeout-secs", type=float, default=30.0)

    p = command("drain")
    p.add_argument("--group", required=True)
    p.add_argument("--idle-ms", type=int, default=3000)
    p.add_argument("--reset", choices=("earliest", "latest"), default="latest",
                   help="auto.offset.reset (default latest: a partition with no committed "
                        "offset shows up as nothing read)")
    p.add_argument("--timeout-secs", type=float, default=60.0)

    p = command("delete-records")
    p.add_argument("--partition", required=True, type=int)
    p.add_argument("--before", required=True, type=int)

    p = command("hold")
    p.add_argument("--group", required=True)
    p.add_argument("--seconds", required=True, type=float)

    p = command("committed")
    p.add_argument("--group", required=True)
    p.add_argument("--partitions", required=True, type=int)

    args = parser.parse_args(argv)
    if getattr(args, "count", 0) < 0:
        parser.error("--count must be >= 0")
    try:
        COMMANDS[args.command](args)
    except Failure as e:
        print(f"error: {args.command} {args.topic}: {e}", file=sys.stderr)
        return 1
    except Exception as e:  # noqa: BLE001 - unexpected: still one clear line, then the trace
        import traceback

        traceback.print_exc()
        print(f"error: {args.command} {args.topic}: {type(e).__name__}: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
