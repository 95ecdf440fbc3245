"""Work orders (工单) and what hangs on them: the lifecycle and its SLA (``lifecycle``), what a lifecycle event sets
off (``notify``), the SMS result notices (``sms``), the exchange with the 110 centre and the provincial platform
(``integrations``), the ticket and call-traffic reports (``reports``, ``call_reports``) and the simulators of the
partners for tests and demos (``simulators``).

A layer of its own above ``domain`` (see ``.importlinter``): the copilot and the serving layer import it; it
imports only ``domain``.
"""
