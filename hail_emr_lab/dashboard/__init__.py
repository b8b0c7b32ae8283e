"""What the sidebar and the ``%hail panel`` show, gathered from the other modules.

Plain functions returning JSON-able dicts, shared by the server extension
(``hail_emr_lab.server.handlers``) and the ipywidgets panel (``hail_emr_lab.notebook.panel``):

* :mod:`.status`: effective configuration (no secrets), endpoint reachability, sessions;
* :mod:`.progress`: running statements with their Spark jobs and stages;
* :mod:`.plots`: the gallery of pulled plots and safe resolution of a plot file;
* :mod:`.backup`: sync status and backup/restore in a background thread;
* :mod:`.listings`: EMR clusters and submitted jobs.

Modules written by other parts of the project (plots, sync, emr, jobs) are imported lazily:
when one is absent the section says so instead of failing.
"""
