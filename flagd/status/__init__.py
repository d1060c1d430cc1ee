"""The live status page: per-worker 1-second latency sketches, merged across workers on read.

``slices`` (what a worker records and shares), ``sketch`` (the DDSketch wrapper), ``window`` (the merged
view), ``board`` (``/status``, ``/status.json`` and the ticker), ``page.html`` (the page itself).
"""
