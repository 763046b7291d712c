"""A process that starts deduplicated chains, for the multi-process scenario::

    python -m tests.e2e.dedup_enqueuer --state URL --keys N

It starts one ``dedup-upload`` chain per key ``key-0`` .. ``key-N-1``, each in a
transaction of its own, and prints one line: the JSON list of the chain ids it
got back, in key order.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from dataclasses import dataclass

import queuert


@dataclass
class Upload:
    key: str


upload_chain = queuert.chain("dedup-upload", input=Upload, output=str)


async def main(state: str, keys: int) -> None:
    app = await queuert.Queuert.from_url(state=state, notify="none", chains=[upload_chain])
    try:
        held = []
        for n in range(keys):
            key = f"key-{n}"
            handle = await app.enqueue_job_chain(None, upload_chain, Upload(key), dedup_key=key)
            held.append(handle.id)
        print(json.dumps(held), flush=True)
    finally:
        await app.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--state", required=True)
    parser.add_argument("--keys", type=int, required=True)
    args = parser.parse_args()
    asyncio.run(main(args.state, args.keys))
