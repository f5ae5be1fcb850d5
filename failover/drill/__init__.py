"""Crisis exercises with evidence (BSI 200-4): scenarios, lab drills, production-safe test
failovers, and the Übungsbericht.

* :mod:`failover.drill.scenario` — scenario documents (``drills/*.yaml``), validated with file:line;
* :mod:`failover.drill.journal` — drill runs, their events and created resources in the state DB;
* :mod:`failover.drill.runner` — ``type: lab``: injects against a world driver, measured from the
  daemon's journal, expectations checked; the lab's driver lives in ``failover.lab.drill_driver``;
* :mod:`failover.drill.testfailover` — ``type: test-failover``: restore into drill namespaces on a
  standby, verify, remove everything (journaled, so ``drill cleanup`` finishes a killed drill);
* :mod:`failover.drill.findings` and :mod:`failover.drill.report` — the Übungsbericht (md, html, json).

Nothing here imports the lab: a lab drill is handed a driver object.
"""
