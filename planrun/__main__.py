from planrun.cli import run

run()
