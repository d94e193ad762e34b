"""The SSH administration console (the Java Opush's CRaSH shell, administrator guide §9.1).

`opush.console.service.make_console_service` builds the listening service; commands live in
`opush.console.commands`, the SSH plumbing in `opush.console.session`, authentication in
`opush.console.auth`.
"""
