"""Log destinations besides the console: a rotating file (:mod:`.file`), a PostgreSQL table
(:mod:`.postgres`) and the message broker (:mod:`.broker`), the last two through a bounded
queue written in the background (:mod:`.queue`) and started with the app
(:mod:`.service`); ``rich`` tracebacks on a terminal (:mod:`.pretty`). Their settings are
parts of the ``log`` section (:mod:`.settings`).
"""
