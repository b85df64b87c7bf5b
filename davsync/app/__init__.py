"""The composition root's operating pieces: systemd notification and logging set-up."""
