"""The preregistered replication study (docs/replication.md): a plan file, a resumable runner built on the sweeps,
and a report computed from the run records.

    plan.py     the plan (JSON) checked without torch; its groups of runs (`Unit`) as sweep specs; the estimate
    runner.py   `run_study` (resumable, local or Ray), `survey` (what is done and left), `chosen` (p and q)
    report.py   `study_report`, `markdown`, `write_report`, `answer`: tables from the records
    notes.py    the sentences beside the tables: intervals that exclude 0 against the chance rate, the epochs
                behind the mean best epoch, vanilla above every grid cell, the cross-tuning grid in words
"""
