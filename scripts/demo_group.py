"""The demo's consumer group, with the real confluent-kafka client.

  demo_group.py read BOOTSTRAP TOPIC GROUP N     read N records of each partition, commit, leave
  demo_group.py resume BOOTSTRAP TOPIC GROUP     read on from the group's committed offsets to the end

Both print, per partition, the keys of the first and last record read and how many.
"""
import sys
import time

from confluent_kafka import Consumer, TopicPartition


def consumer(bootstrap, group, reset):
    return Consumer({
        "bootstrap.servers": bootstrap,
        "group.id": group,
        "enable.auto.commit": False,
        "auto.offset.reset": reset,
    })


def read(bootstrap, topic, group, n=None):
    # a new group reads from the start; resuming, a partition without a
    # committed offset reads nothing (the demo shows what the restore set)
    c = consumer(bootstrap, group, "earliest" if n is not None else "latest")
    c.subscribe([topic])
    seen = {}
    last = {}
    ends = None
    deadline = time.monotonic() + 60
    idle_since = time.monotonic()
    while time.monotonic() < deadline:
        assignment = c.assignment()
        if assignment and ends is None:
            ends = {tp.partition: c.get_watermark_offsets(tp, timeout=10)[1] for tp in assignment}
        for m in c.consume(num_messages=500, timeout=0.2):
            if m.error():
                sys.exit(f"reading {topic}: {m.error()}")
            p = m.partition()
            if n is not None and len(seen.get(p, [])) >= n:
                continue
            seen.setdefault(p, []).append(m.key().decode())
            last[p] = m.offset()
            idle_since = time.monotonic()
        if ends is None:
            continue
        if n is not None and all(len(seen.get(p, [])) >= n for p in ends):
            break
        if n is None and time.monotonic() - idle_since > 3:
            break
    if last:
        c.commit(offsets=[TopicPartition(topic, p, o + 1) for p, o in last.items()], asynchronous=False)
    c.close()
    for p in sorted(seen):
        keys = seen[p]
        print(f"  {topic}[{p}]: {len(keys)} record(s), {keys[0]} .. {keys[-1]}; committed {last[p] + 1}")
    if not seen:
        print(f"  {topic}: nothing to read")


if __name__ == "__main__":
    what, bootstrap, topic, group, *rest = sys.argv[1:]
    if what == "read":
        read(bootstrap, topic, group, int(rest[0]))
    elif what == "resume":
        read(bootstrap, topic, group)
    else:
        sys.exit(__doc__)
