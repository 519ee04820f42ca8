"""The Textual dashboard over a Mayuri store, shipped in the wheel as `mayuri.tui`.

It reads the store only through `mayuri.store.queries` and never imports the
scheduler.
"""
