"""Isolated worker VMs for games: a CPython take on pocketpy's ``pkpy.ComputeThread``.

This package will hold ``ComputeThread`` (VM 0 owns a separate worker process, VM *i*, that runs jobs in
parallel), ``currentvm()``, ``report_progress()`` and the error classes. It depends on the standard
library and cloudpickle only: never on pygame, numpy or worldgen.
"""
