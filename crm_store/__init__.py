"""The CRM store: models, sessions, migrations, CSV import and the business rules the chat relies on."""
