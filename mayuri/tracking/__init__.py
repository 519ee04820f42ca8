"""The job side of tracking: buffered metric logging, artifacts and ad-hoc runs.

Imported only when a job first logs, saves an artifact or calls
`mayuri.init`; `import mayuri` never imports it.
"""
