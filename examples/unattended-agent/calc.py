"""The code the agent works on. `mean` has a bug the tests catch."""


def mean(values):
    if not values:
        raise ValueError("mean of nothing")
    return sum(values) / (len(values) + 1)
