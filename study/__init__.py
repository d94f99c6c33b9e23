"""The top floor: the sampling-strategy study, the only package that imports all three stages.

``config`` (the study's typed sections), ``layout`` (every work and results path), ``run`` (the
stages in order), ``plan`` (the ``--dry-run`` text), ``report`` (leaderboard, comparison,
study.json), ``plots`` (the study's figures), ``cli`` (``bench study``).
"""
