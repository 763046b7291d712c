"""The fan-out / fan-in example runs: every image is published once, with the three
renditions its resize chains wrote, in the order of the sizes, and the smallest one
as its thumbnail."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from examples.image_fan_in import SIZES, run


async def test_every_image_is_published_with_its_three_renditions(tmp_path: Path) -> None:
    database = tmp_path / "fan-in.db"
    published = await run(3, database)
    with sqlite3.connect(database) as conn:
        renditions = {
            row[0]: (row[1], row[2])
            for row in conn.execute("SELECT id, image_id, size FROM renditions")
        }
        publications = dict(conn.execute("SELECT image_id, renditions FROM publications"))
    assert len(published) == 3
    assert len(renditions) == 3 * len(SIZES)
    for p in published:
        assert [renditions[r] for r in p.rendition_ids] == [(p.image_id, s) for s in SIZES]
        assert publications[p.image_id] == ",".join(map(str, p.rendition_ids))
        # The publish step read its first blocker by position: the smallest size.
        assert renditions[p.thumbnail_id] == (p.image_id, SIZES[0])
