"""The DSPy programs: the SAGE loop, generator, reviser, search agent, judge, verification by
execution, their signatures, the model-free rules they obey, and their optimization."""
