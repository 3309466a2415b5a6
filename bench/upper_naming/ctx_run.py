"""Fit the context (person-crop) upper head, its variant with stage crops, and the plain baseline on the
cached crops; write main's heads file with each upper head swapped in (for fasteval.py, attr_eval.py)."""
from pathlib import Path
exec(open(str(Path(__file__).resolve().parent / "train.py")).read().replace('if __name__ == "__main__":', 'if False:'))
layer, _ = run("ctx person", ctx=(P,))
save(layer, "/tmp/naming/heads-ctx-person.pt", (P,))
layer, _ = run("ctx person + stage rows", ctx=(P,), stage_rows=True)
save(layer, "/tmp/naming/heads-ctx-person-stage.pt", (P,))
layer, _ = run("baseline")
save(layer, "/tmp/naming/heads-baseline.pt", ())
