from pathlib import Path
exec(open(str(Path(__file__).resolve().parent / "train.py")).read().replace('if __name__ == "__main__":', 'if False:'))
for w in (1.0, 6.0, 10.0):
    run(f"ctx person ccp_w={w}", ctx=(P,), ccp_weight=w)
run("ctx person clothing mirrored", ctx=(P,), clothing_mirror=True)
