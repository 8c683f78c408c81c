"""Log destinations besides the console: a rotating file (:mod:`.file`); ``rich``
tracebacks on a terminal (:mod:`.pretty`). Their settings are parts of the ``log`` section
(:mod:`.settings`).
"""
