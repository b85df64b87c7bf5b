"""The sync of device stores with DAV collections, in pieces with one job each.

`ports` (what the sync needs of a device store, a DAV collection and the state), `gather`
(what changed on each side), `execute` (actions, as a table from Op to handler), `marks`
(settling how far the server was read), `collection` (one collection: gather -> plan ->
execute -> settle) and `run` (a re-entrant, cancellable run over many collections). Nothing
here reads the configuration: `davsync.app.sync` builds a run from it.
"""
