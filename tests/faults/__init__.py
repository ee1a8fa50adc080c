"""The fault-injection harness (test code, not part of the library): bad videos written from a
good clip and a runner that extracts them (``videos``), and the annotation, config, run and
security cases (``checks``); asserted by the tests, printed by ``benchmarks/fault_injection.py``."""
