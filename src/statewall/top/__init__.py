"""``statewall top``: an iptstate-like live view of a running daemon's conntrack table.

model.py (rows, rates between snapshots, sorting, filtering, totals, highlight: pure),
render.py (column layout and the text of one screen from a ``View``: pure),
snapshot.py (the daemon side: the compact ``top`` request word over a ``Tracker``),
fetch.py (the client side: ask the daemon, fall back to ``conntrack -L -o json``),
screen.py (the curses loop: keys, resize, colours).
"""
