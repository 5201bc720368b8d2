"""Kernel differential testing: the same packets through Linux and through statewall.

Owns: ``statewall kernel-diff`` and the corpus test's comparison, as one mechanism -
``plan`` (a capture -> a lab scenario: interfaces or sides, injection, timing),
``run`` (record the scenario in the kernel lab, replay the recording through statewall),
``compare`` (per packet verdict, ctstate, entry, tables, events; first divergence per
connection), ``model`` (the statewall firewall built from the recording's settings and
rules), ``report`` (text and JSON).
Must not know: how the tracker works (it is the thing measured), namespaces (``lab``).

Typical use::

    from statewall.kerneldiff.run import Options, kernel_diff
    res = kernel_diff(Options(Path("capture.pcapng"), rules_v4=open("rules").read()))
    print(report.text(res.comparison, res.info)); sys.exit(0 if res.comparison.agree else 1)

    from statewall.kerneldiff.compare import compare      # a stored recording, no root
    cmp = compare(json.load(open("corpus/x/kernel.json")), frames_of_capture)
"""
