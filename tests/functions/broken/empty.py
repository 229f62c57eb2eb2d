def helper(a: int) -> int:
    return a
