"""The evidence report: a sweep of pre-trained-vs-baseline runs, their statistics and figures.

``budgets`` says how big the sweep is, ``plan`` lists its runs, ``sweep`` trains them through
:mod:`models.experiment` with a resumable ``cache``, ``stats`` and ``tables`` summarise them,
``figures`` draws them, ``conclusion`` words what the numbers say, and ``document`` writes
``report.html``, ``report.md`` and ``results.csv``. ``build.build_report`` runs it all, one
module per step: ``measure`` runs the sweep, ``drawing`` picks each figure's runs and draws
it, ``compose`` words the sections.
"""
