"""The Textual dashboard over a Mayuri store, shipped in the wheel as `mayuri.tui`.

`app.make_app` builds it; `screens/` holds one module per screen, `widgets/`
what they are made of, `styles/` their CSS. It reads the store only through
the store package's query functions (`mayuri.store.browse_queries` and its
neighbours), in thread workers; it never writes, never runs SQL of its own,
and never imports the scheduler (cancel and rerun go through the `mayuri`
command in a subprocess).
"""
