"""The pages for the people behind the gate (issue 14): server-rendered HTML over the same services and
roles as the API, a session cookie after ``/login``, CSRF-protected forms, live parts pushed by
Server-Sent Events. Templates and static files ship inside this package (no CDN)."""
