"""Dead letters a page at a time, newest first, from a real SQLite event log."""

from __future__ import annotations

from pathlib import Path

from lepton_platform.broker.index import TriggerIndex
from lepton_platform.broker.log import Event, EventLog
from lepton_platform.broker.triggers import Trigger


def test_dead_letters_page_newest_first_without_gaps_or_repeats(tmp_path: Path):
    log = EventLog(tmp_path / "events.db")
    trigger = Trigger("t1", "fn", attributes={"type": "x"})
    events = [Event.from_json({"specversion": "1.0", "id": str(n), "source": "/s", "type": "x"}) for n in range(7)]
    with log.database.transaction() as db:
        _, owed = log.write(db, [(e, None, None) for e in events], TriggerIndex([trigger]))
    for _, due in owed:
        log.dead_letter(trigger, due.seq, 3, 500, "always fails", None)
    pages, before = [], None
    while True:
        page = log.dead_letters(3, before=before)
        if not page:
            break
        pages.append([letter["event"]["id"] for letter in page])
        before = page[-1]["id"]
    log.close()
    assert pages == [["6", "5", "4"], ["3", "2", "1"], ["0"]]
