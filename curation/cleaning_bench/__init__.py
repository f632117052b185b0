"""The cleaning benchmark (`manage.py bench_cleaning`): how much the product recovers, measured against known truth.

plan.py: the settings of a benchmark (profiles sized for a 2-core CPU or a GPU) and their validation.
stages.py: running one product job, on a worker or in this process, through the same Job rows.
reviewers.py: simulated reviewers who decide the queue from truth.csv through the review services, and the oracle.
measure.py: detection, review and run figures from the database and the truth.
report.py: report.json, report.md and the plots.
pipeline.py: the whole benchmark, stage by stage.
"""
