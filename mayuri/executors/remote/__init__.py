"""The remote job contract: what every executor that runs jobs on other machines shares.

A node never opens the store. `runner` runs one attempt on a node under the
same contract as the local executor (bootstrap, `MAYURI_*` variables,
`params.json`, logs in the run folder, `exit-N.json`, the whole process
group stopped on SIGTERM); `spool` is the job side's mode there (metrics and
artifacts to files in the run folder); `ingest` is the head's reading of
those files into the store, while the job runs and at its end. The Ray
executor (`mayuri.executors.ray`) and the Slurm one build on these; none of
them imports an engine.
"""
