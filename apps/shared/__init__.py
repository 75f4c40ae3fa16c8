"""What the three apps share: the lake (layers on object storage), the table schemas and the
Pushgateway client. Depends only on contracts and third-party libraries, never on an app."""
