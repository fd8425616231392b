"""Plain Starlette routes beside GraphQL: ``/dns`` zone text, ``/config`` for booting
machines, and the helpers they share (``contractor.rest.auth``: bearer tokens and JSON
errors)."""
