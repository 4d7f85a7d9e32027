"""Send crawled pages to the worker's input topic with confluent-kafka.

    python examples/produce_pages.py --bootstrap-servers localhost:9092 \
        https://example.com/news/1 page1.html https://example.com/news/2 page2.txt

Each page is one `raw_page.v1` JSON object keyed by its url (`.html` files go in `html`, anything
else in `text`), sent as a CloudEvent in binary mode with a W3C `traceparent` header: the worker
carries that header onto the article, duplicate or dead-letter event the page ends as.
"""

import argparse
import json
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path

from confluent_kafka import Producer

parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
parser.add_argument("--bootstrap-servers", default="localhost:9092")
parser.add_argument("--topic", default="pages.raw")
parser.add_argument("pages", nargs="+", metavar="URL FILE", help="pairs of page url and saved page file")
args = parser.parse_args()
if len(args.pages) % 2:
    parser.error("give a URL and a FILE for each page")

producer = Producer({"bootstrap.servers": args.bootstrap_servers, "acks": "all"})
failures = []


def delivered(error, message):
    if error is not None:
        failures.append(f"{message.key().decode()}: {error}")


for url, path in zip(args.pages[::2], args.pages[1::2], strict=True):
    content = Path(path).read_text(encoding="utf-8", errors="replace")
    page = {
        "url": url,
        "html" if path.endswith((".html", ".htm")) else "text": content,
        "fetched_at": datetime.now(timezone.utc).isoformat(),
        "source": "examples/produce_pages.py",
    }
    trace_id, span_id = os.urandom(16).hex(), os.urandom(8).hex()
    headers = {
        "ce_specversion": "1.0",
        "ce_id": str(uuid.uuid4()),
        "ce_source": "examples/produce_pages.py",
        "ce_type": "raw_page.v1",
        "content-type": "application/json",
        "traceparent": f"00-{trace_id}-{span_id}-01",
    }
    producer.produce(args.topic, key=url, value=json.dumps(page), headers=headers, on_delivery=delivered)
    print(f"{url} traceparent={headers['traceparent']}")

producer.flush(30)
if failures:
    raise SystemExit("not delivered: " + "; ".join(failures))
