"""The table a run prints at the end: teacher and every student on the test persons."""

from __future__ import annotations


def format_table(results: dict) -> str:
    lines = []
    t = results.get("teacher", {}).get("test")
    if t:
        lines.append(
            f"teacher (test persons): acc {t['acc']:.3f}  kappa {t['kappa']:.3f}  "
            f"auroc {t['auroc']:.3f}  f1 {t['f1']:.3f}"
        )
    students = results.get("students", {})
    if students:
        variants = sorted(
            {v for b in students.values() for v in b if not v.startswith("gap")},
            key=["real", "stimuli", "stimuli_kd"].index,
        )
        head = f"{'student':<14}" + "".join(f"{v + ' acc/kappa':>24}" for v in variants)
        lines += [head, "-" * len(head)]
        for name, block in students.items():
            cells = "".join(
                f"{'(not trained)':>24}"
                if "error" in block[v]
                else f"{block[v]['acc']:>15.3f} / {block[v]['kappa']:>6.3f}"
                for v in variants
            )
            lines.append(f"{name:<14}{cells}")
    return "\n".join(lines)
