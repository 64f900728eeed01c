"""``ray32 qa``: check an output clip against its source and write the QA report."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from flows.progress import progress_bar


def register(sub) -> None:
    p = sub.add_parser(
        "qa", help="check an output clip against its source and write the HTML QA report",
        description="Run the QA checks on any source/output pair: label text (OCR), label artwork and drift, face "
                    "identity, flicker, motion and structure fidelity, timing, exposure and colour. Writes "
                    "qa_report.html (self-contained), metrics.csv (one row), frames.csv (per frame) and "
                    "verdict.json into --out. Exit status: 0 when QA passes, 1 when it fails, 2 on bad input.",
        epilog="facts.json example: {\"variant\": \"de-aqua500\", \"market\": \"de\", \"mode\": \"adhere\", "
               "\"label\": {\"text\": \"AQUA FRESH 500 ml\", \"artwork\": \"de.png\", \"truth\": "
               "\"demo_shot.truth.json\"}}. Paths are relative to the facts file. A label needs its place in the "
               "source: 'track' (per-frame quads), 'truth' (a demo truth file) or 'corners' at 'frame'.",
    )
    p.add_argument("source", type=Path, help="the source shot")
    p.add_argument("output", type=Path, help="the rendered variant to check")
    p.add_argument("--facts", type=Path, help="facts JSON: expected label text/artwork, mode, engine, keyframes, "
                                              "overrides; or a render record (<stem>.request.json). Default: the "
                                              "render record beside the output that lists it, if any")
    p.add_argument("--start", help="the source's trim start the output was rendered from (seconds, timecode or "
                                   "60f; default: the render record's trim, else the first frame)")
    p.add_argument("--end", help="the trim end, exclusive (default: the render record's trim, else the last frame)")
    p.add_argument("--out", type=Path, default=Path("build/qa"), help="report folder (default: build/qa)")
    p.add_argument("--samples", type=int, default=5,
                   help="evenly spread frames OCR always reads (default 5); OCR also reads every frame where the "
                        "label's per-frame similarity dips, and faces are checked about 4 times a second")
    p.set_defaults(func=cmd_qa)


def cmd_qa(args: argparse.Namespace) -> int:
    from qa.expectations import verdicts
    from qa.facts import Facts, QaError, load_facts, render_record_for
    from qa.metrics import measure, metrics_table
    from qa.report import write_report

    if args.samples < 1:
        raise QaError(f"--samples must be at least 1, got {args.samples}")
    record = None if args.facts else render_record_for(args.output)
    if record is not None:  # ray32 render's record beside the output: its request and engine are the facts
        print(f"facts: from the render record {record}")
    facts = load_facts(args.facts or record) if (args.facts or record) else Facts(variant=args.output.stem)
    if args.facts and facts.variant == "variant":
        facts = facts.model_copy(update={"variant": args.output.stem})
    start, end = args.start, args.end
    used = args.facts or record
    if start is None and end is None and used is not None and Path(used).name.endswith(".request.json"):
        trim = json.loads(Path(used).read_text(encoding="utf-8")).get("trim") or {}
        start, end = trim.get("start"), trim.get("end")  # the part of the source the variant was rendered from
    source = args.source
    if start is not None or end is not None:
        from ray32.shot import open_shot

        source = open_shot(args.source, start=start, end=end, detect_cuts=False)
        print(f"source: frames {source.first}-{source.stop - 1} of {args.source.name}")
    with progress_bar("checking", unit="frame") as bar:
        result = measure(source, args.output, facts, samples=args.samples, progress=bar)
    table = metrics_table([result])
    verdict = verdicts([result], table)[result.variant]
    args.out.mkdir(parents=True, exist_ok=True)
    table.to_csv(args.out / "metrics.csv", index=False)
    result.frames.to_csv(args.out / "frames.csv")
    (args.out / "verdict.json").write_text(json.dumps(
        {"variant": verdict.variant, "verdict": verdict.state, "reasons": verdict.reasons,
         "failed": verdict.failed, "notes": result.notes, "judged_against": result.judged_against}, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    report = write_report([result], {result.variant: verdict}, args.out, title=f"QA: {args.output.name}")
    print(f"{verdict.variant}: QA {verdict.state}")
    for r in verdict.reasons:
        print(f"  - {r}")
    for n in result.notes:
        print(f"  note: {n}")
    print(f"report: {report}")
    return 0 if verdict.passed else 1
