"""Course run time: the wall time of every lesson notebook, executed top to bottom in a fresh kernel per profile
(what ``jupyter nbconvert --execute`` does), on this machine."""

from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

ROOT = Path(__file__).resolve().parents[1]


def notebook_minutes(profiles: tuple[str, ...] = ("ci", "cpu"), folder: str = "solutions",
                     names: list[str] | None = None, timeout: int = 1800) -> list[dict]:
    """Minutes per notebook and profile (``solutions/`` by default: the complete lessons). A failing notebook is
    recorded with its error instead of a time. With ``$BENCHMARK_KEEP_EXECUTED`` set to a folder, each executed
    notebook is written there as ``<profile>-<name>``, outputs included, to read what the timed run printed."""
    keep = os.environ.get("BENCHMARK_KEEP_EXECUTED")
    from dalle2_lessons import course

    names = names or [lesson.filename for lesson in course.LESSONS]
    rows = []
    saved = os.environ.get("DALLE2_LESSONS_PROFILE")
    try:
        for profile in profiles:
            os.environ["DALLE2_LESSONS_PROFILE"] = profile  # the kernel inherits it
            for name in names:
                path = ROOT / folder / name
                nb = nbformat.read(path, as_version=4)
                t0 = time.perf_counter()
                error = ""
                try:
                    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                   resources={"metadata": {"path": str(path.parent)}}).execute()
                except Exception as e:  # noqa: BLE001 — a benchmark reports failures, it does not stop at them
                    error = f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"
                rows.append({"notebook": name, "profile": profile, "minutes": (time.perf_counter() - t0) / 60,
                             "error": error})
                if keep:
                    Path(keep).mkdir(parents=True, exist_ok=True)
                    nbformat.write(nb, Path(keep) / f"{profile}-{name}")
                print(f"  {profile:4s} {name:32s} {rows[-1]['minutes']:6.2f} min {error}", flush=True)
    finally:
        if saved is None:
            os.environ.pop("DALLE2_LESSONS_PROFILE", None)
        else:
            os.environ["DALLE2_LESSONS_PROFILE"] = saved
    return rows


def summary(rows: list[dict], limit: float = 10.0) -> str:
    """Per profile: notebooks measured, total minutes, the longest, and any over the course's ``limit`` per notebook."""
    lines = []
    for profile in dict.fromkeys(r["profile"] for r in rows):
        ok = [r for r in rows if r["profile"] == profile and not r["error"]]
        failed = sum(r["profile"] == profile and bool(r["error"]) for r in rows)
        if not ok:
            lines.append(f"* `{profile}`: every notebook failed.")
            continue
        longest = max(ok, key=lambda r: r["minutes"])
        over = [r["notebook"] for r in ok if r["minutes"] > limit]
        lines.append(f"* `{profile}`: {len(ok)} notebook{'s' * (len(ok) != 1)} in "
                     f"{sum(r['minutes'] for r in ok):.1f} min, the longest {longest['notebook']} "
                     f"({longest['minutes']:.1f} min); "
                     + (f"over {limit:g} min: {', '.join(over)}" if over else f"none over {limit:g} min")
                     + (f"; {failed} failed" if failed else "") + ".")
    return "\n".join(lines) + "\n"
