from pathlib import Path
exec(open(str(Path(__file__).resolve().parent / "train.py")).read().replace('if __name__ == "__main__":', 'if False:'))
# lite2 file has only roles 0, 2, 4
run("lite2 baseline")
run("lite2 ctx person", ctx=(P,))
run("lite2 ctx person + stage rows", ctx=(P,), stage_rows=True)
run("lite2 stage rows", stage_rows=True)
