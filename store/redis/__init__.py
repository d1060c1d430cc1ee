"""Redis: the flag store the nodes read (``flag_store.py``), the feed entries it publishes (``feed.py``) and
the Lua scripts that apply a change and publish it atomically (``scripts.py``). Imports only the top of store.
"""
