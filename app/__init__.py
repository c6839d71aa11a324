"""DL-SMS: seat reservations for university libraries."""
