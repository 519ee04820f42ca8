"""Peewee models of the store's tables (the shape that the newest migration leaves).

Models only: queries live in `queries.py` and writes in `records.py`. The
tables themselves are made by the numbered migrations in `schema/`, never by
`create_table` here.
"""

from __future__ import annotations

import peewee

database_proxy = peewee.DatabaseProxy()


class JSONText(peewee.TextField):
    """JSON kept as text; decoding is left to callers that need it (listings stay cheap)."""


class BaseModel(peewee.Model):
    class Meta:
        database = database_proxy
        legacy_table_names = False


class Experiment(BaseModel):
    id = peewee.AutoField()
    name = peewee.TextField(unique=True)
    created_at = peewee.FloatField()


class Run(BaseModel):
    id = peewee.TextField(primary_key=True)
    experiment = peewee.ForeignKeyField(Experiment, column_name="experiment_id", backref="runs")
    job = peewee.TextField()
    kind = peewee.TextField(default="job")
    status = peewee.TextField()
    fingerprint = peewee.TextField(null=True)
    config_hash = peewee.TextField()
    params = JSONText(default="{}")
    config = JSONText(default="{}")
    upstream = JSONText(default="{}")
    environment = JSONText(default="{}")
    reason = peewee.TextField(null=True)
    error = peewee.TextField(null=True)
    exit_code = peewee.IntegerField(null=True)
    created_at = peewee.FloatField()
    started_at = peewee.FloatField(null=True)
    ended_at = peewee.FloatField(null=True)
    user = peewee.TextField()
    host = peewee.TextField()
    run_dir = peewee.TextField()
    scheduler_pid = peewee.IntegerField(null=True)
    hits = peewee.IntegerField(default=0)
    last_used_at = peewee.FloatField(null=True)
    pinned = peewee.BooleanField(default=False)
    source = peewee.TextField(null=True)
    overrides = JSONText(null=True)


class Attempt(BaseModel):
    run = peewee.ForeignKeyField(Run, column_name="run_id", backref="attempts", on_delete="CASCADE")
    number = peewee.IntegerField()
    status = peewee.TextField()
    pid = peewee.IntegerField(null=True)
    pid_create_time = peewee.FloatField(null=True)
    host = peewee.TextField(null=True)
    started_at = peewee.FloatField(null=True)
    ended_at = peewee.FloatField(null=True)
    exit_code = peewee.IntegerField(null=True)
    signal = peewee.IntegerField(null=True)
    cause = peewee.TextField(null=True)
    gpus = JSONText(default="[]")
    params = JSONText(default="{}")
    resumed_from = peewee.TextField(null=True)
    resumed_step = peewee.IntegerField(null=True)
    leftovers = peewee.IntegerField(null=True)


class File(BaseModel):
    path = peewee.TextField()
    kind = peewee.TextField()
    size = peewee.IntegerField()
    sha512 = peewee.TextField()


class ClosureEntry(BaseModel):
    run = peewee.ForeignKeyField(Run, column_name="run_id", on_delete="CASCADE")
    file = peewee.ForeignKeyField(File, column_name="file_id")
    role = peewee.TextField()

    class Meta:
        primary_key = peewee.CompositeKey("run", "file")


class Blob(BaseModel):
    sha512 = peewee.TextField(primary_key=True)
    size = peewee.IntegerField()
    created_at = peewee.FloatField()


class Lineage(BaseModel):
    parent = peewee.ForeignKeyField(Run, column_name="parent_id", backref="children")
    child = peewee.ForeignKeyField(Run, column_name="child_id", backref="parents", on_delete="CASCADE")
    name = peewee.TextField()

    class Meta:
        primary_key = peewee.CompositeKey("child", "parent", "name")


class Output(BaseModel):
    run = peewee.ForeignKeyField(Run, column_name="run_id", backref="outputs", on_delete="CASCADE")
    name = peewee.TextField()
    value = JSONText()

    class Meta:
        primary_key = peewee.CompositeKey("run", "name")


class StatCache(BaseModel):
    path = peewee.TextField(primary_key=True)
    dev = peewee.IntegerField()
    ino = peewee.IntegerField()
    size = peewee.IntegerField()
    mtime_ns = peewee.IntegerField()
    ctime_ns = peewee.IntegerField()
    sha512 = peewee.TextField()
    hashed_at_ns = peewee.IntegerField()


MODELS = (Experiment, Run, Attempt, File, ClosureEntry, Blob, Lineage, Output, StatCache)
