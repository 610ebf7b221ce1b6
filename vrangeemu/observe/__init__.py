"""Observability: typed events (events.py, the --trace schema) and the views
that subscribe to them: the trace writer, --live and --stats.

Views never see the Supervisor.  Besides events they read a `RunState`:
  argv         the program's argv (list of str)
  spaces()     the live address spaces: model.space.AddressSpace (tgid, name,
               ranges, stats, tids)
  pressure     the pressure source or None (.name, .readings: pressure.Readings)
Processes that are gone reach the views as SpaceEnd events.
"""
