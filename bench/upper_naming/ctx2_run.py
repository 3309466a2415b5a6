"""Context crops of context_crops.py for the upper head (FEAT=-ctx2)."""
from pathlib import Path
exec(open(str(Path(__file__).resolve().parent / "train.py")).read().replace('if __name__ == "__main__":', 'if False:'))
run("baseline")
run("ctx person", ctx=(P,))
run("ctx upper body", ctx=("U",))
run("ctx grown 1.6", ctx=("G",))
run("ctx upper body + person", ctx=("U", P))
layer, _ = run("ctx upper body", ctx=("U",), quiet=True)
save(layer, "/tmp/naming/heads-ctx-upperbody.pt", ("U",))
layer, _ = run("ctx grown", ctx=("G",), quiet=True)
save(layer, "/tmp/naming/heads-ctx-grown.pt", ("G",))
