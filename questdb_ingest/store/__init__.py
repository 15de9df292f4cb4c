"""SQL over PGWire: connections, schema migrations, queries."""
