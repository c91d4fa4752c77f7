"""String helpers (sample code for plans/batch-refactor.yaml)."""


def shout(text: str) -> str:
    print("shouting")
    return text.upper() + "!"
