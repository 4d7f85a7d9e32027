"""Read the worker's `articles.v1` events with confluent-kafka, one line per article.

    python examples/consume_articles.py --bootstrap-servers localhost:9092 --group my-indexer

The body is the `article.v1` JSON object (schema: `ingest-worker schemas`); the CloudEvents
attributes are Kafka headers (`ce_id`, `ce_type`, `ce_time`, ...). `ce_id` is the article id:
the same story processed twice has the same id, so upsert by it.
"""

import argparse
import json
import time

from confluent_kafka import Consumer

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--bootstrap-servers", default="localhost:9092")
parser.add_argument("--topic", default="articles.v1")
parser.add_argument("--group", default="example-article-reader")
parser.add_argument("--max", type=int, default=0, help="stop after this many articles (0 = never)")
parser.add_argument("--timeout", type=float, default=0, help="stop after this many idle seconds (0 = never)")
args = parser.parse_args()

consumer = Consumer(
    {
        "bootstrap.servers": args.bootstrap_servers,
        "group.id": args.group,
        "auto.offset.reset": "earliest",
    }
)
consumer.subscribe([args.topic])
seen, idle_since = 0, time.monotonic()
try:
    while not args.max or seen < args.max:
        message = consumer.poll(1.0)
        if message is None:
            if args.timeout and time.monotonic() - idle_since > args.timeout:
                break
            continue
        if message.error():
            print(f"error: {message.error()}")
            continue
        idle_since = time.monotonic()
        headers = {name: value.decode() for name, value in message.headers() or []}
        article = json.loads(message.value())
        entities = ", ".join(e["canonical"] for e in article["entities"][:5])
        print(
            f"{headers['ce_id']} {headers['ce_type']} {article['title']!r} {article['url']} "
            f"[{article['word_count']} words; {entities}] traceparent={headers.get('traceparent', '-')}",
            flush=True,
        )
        seen += 1
finally:
    consumer.close()  # commits the offsets read and leaves the group
