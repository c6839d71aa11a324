import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class User(_message.Message):
    __slots__ = ("id", "student_id", "name", "email", "role", "created_at", "suspended_until")
    ID_FIELD_NUMBER: _ClassVar[int]
    STUDENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    SUSPENDED_UNTIL_FIELD_NUMBER: _ClassVar[int]
    id: int
    student_id: str
    name: str
    email: str
    role: str
    created_at: _timestamp_pb2.Timestamp
    suspended_until: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., student_id: _Optional[str] = ..., name: _Optional[str] = ..., email: _Optional[str] = ..., role: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., suspended_until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class LoginRequest(_message.Message):
    __slots__ = ("student_id", "password")
    STUDENT_ID_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    student_id: str
    password: str
    def __init__(self, student_id: _Optional[str] = ..., password: _Optional[str] = ...) -> None: ...

class LoginResponse(_message.Message):
    __slots__ = ("access_token", "token_type", "expires_at", "user")
    ACCESS_TOKEN_FIELD_NUMBER: _ClassVar[int]
    TOKEN_TYPE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    USER_FIELD_NUMBER: _ClassVar[int]
    access_token: str
    token_type: str
    expires_at: _timestamp_pb2.Timestamp
    user: User
    def __init__(self, access_token: _Optional[str] = ..., token_type: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., user: _Optional[_Union[User, _Mapping]] = ...) -> None: ...

class RegisterRequest(_message.Message):
    __slots__ = ("student_id", "name", "password", "email")
    STUDENT_ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASSWORD_FIELD_NUMBER: _ClassVar[int]
    EMAIL_FIELD_NUMBER: _ClassVar[int]
    student_id: str
    name: str
    password: str
    email: str
    def __init__(self, student_id: _Optional[str] = ..., name: _Optional[str] = ..., password: _Optional[str] = ..., email: _Optional[str] = ...) -> None: ...

class VerifyRequest(_message.Message):
    __slots__ = ("token",)
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    token: str
    def __init__(self, token: _Optional[str] = ...) -> None: ...

class VerifyResponse(_message.Message):
    __slots__ = ("valid", "user_id", "student_id", "role", "expires_at")
    VALID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    STUDENT_ID_FIELD_NUMBER: _ClassVar[int]
    ROLE_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    valid: bool
    user_id: int
    student_id: str
    role: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, valid: _Optional[bool] = ..., user_id: _Optional[int] = ..., student_id: _Optional[str] = ..., role: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetMeRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Seat(_message.Message):
    __slots__ = ("id", "branch", "area", "label", "has_power", "has_monitor", "status", "available")
    ID_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    HAS_POWER_FIELD_NUMBER: _ClassVar[int]
    HAS_MONITOR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    id: int
    branch: str
    area: str
    label: str
    has_power: bool
    has_monitor: bool
    status: str
    available: bool
    def __init__(self, id: _Optional[int] = ..., branch: _Optional[str] = ..., area: _Optional[str] = ..., label: _Optional[str] = ..., has_power: _Optional[bool] = ..., has_monitor: _Optional[bool] = ..., status: _Optional[str] = ..., available: _Optional[bool] = ...) -> None: ...

class Interval(_message.Message):
    __slots__ = ("start_time", "end_time")
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetSeatsRequest(_message.Message):
    __slots__ = ("branch", "area", "has_power", "has_monitor", "status", "available_only", "start_time", "end_time", "limit", "offset")
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    HAS_POWER_FIELD_NUMBER: _ClassVar[int]
    HAS_MONITOR_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_ONLY_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    branch: str
    area: str
    has_power: bool
    has_monitor: bool
    status: str
    available_only: bool
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    limit: int
    offset: int
    def __init__(self, branch: _Optional[str] = ..., area: _Optional[str] = ..., has_power: _Optional[bool] = ..., has_monitor: _Optional[bool] = ..., status: _Optional[str] = ..., available_only: _Optional[bool] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class GetSeatsResponse(_message.Message):
    __slots__ = ("items", "total")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Seat]
    total: int
    def __init__(self, items: _Optional[_Iterable[_Union[Seat, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class GetSeatRequest(_message.Message):
    __slots__ = ("seat_id", "date")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    DATE_FIELD_NUMBER: _ClassVar[int]
    seat_id: int
    date: str
    def __init__(self, seat_id: _Optional[int] = ..., date: _Optional[str] = ...) -> None: ...

class SeatDetail(_message.Message):
    __slots__ = ("seat", "busy")
    SEAT_FIELD_NUMBER: _ClassVar[int]
    BUSY_FIELD_NUMBER: _ClassVar[int]
    seat: Seat
    busy: _containers.RepeatedCompositeFieldContainer[Interval]
    def __init__(self, seat: _Optional[_Union[Seat, _Mapping]] = ..., busy: _Optional[_Iterable[_Union[Interval, _Mapping]]] = ...) -> None: ...

class CheckAvailabilityRequest(_message.Message):
    __slots__ = ("seat_id", "start_time", "end_time")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    seat_id: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, seat_id: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class Availability(_message.Message):
    __slots__ = ("seat_id", "start_time", "end_time", "available", "conflicts")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    CONFLICTS_FIELD_NUMBER: _ClassVar[int]
    seat_id: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    available: bool
    conflicts: _containers.RepeatedCompositeFieldContainer[Interval]
    def __init__(self, seat_id: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., available: _Optional[bool] = ..., conflicts: _Optional[_Iterable[_Union[Interval, _Mapping]]] = ...) -> None: ...

class GetBranchesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Branch(_message.Message):
    __slots__ = ("name", "total_seats", "available_now", "reserved_now", "occupied_now", "with_power", "with_monitor", "areas", "id", "timezone", "open_now", "next_change_at")
    NAME_FIELD_NUMBER: _ClassVar[int]
    TOTAL_SEATS_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_NOW_FIELD_NUMBER: _ClassVar[int]
    RESERVED_NOW_FIELD_NUMBER: _ClassVar[int]
    OCCUPIED_NOW_FIELD_NUMBER: _ClassVar[int]
    WITH_POWER_FIELD_NUMBER: _ClassVar[int]
    WITH_MONITOR_FIELD_NUMBER: _ClassVar[int]
    AREAS_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    TIMEZONE_FIELD_NUMBER: _ClassVar[int]
    OPEN_NOW_FIELD_NUMBER: _ClassVar[int]
    NEXT_CHANGE_AT_FIELD_NUMBER: _ClassVar[int]
    name: str
    total_seats: int
    available_now: int
    reserved_now: int
    occupied_now: int
    with_power: int
    with_monitor: int
    areas: _containers.RepeatedScalarFieldContainer[str]
    id: int
    timezone: str
    open_now: bool
    next_change_at: _timestamp_pb2.Timestamp
    def __init__(self, name: _Optional[str] = ..., total_seats: _Optional[int] = ..., available_now: _Optional[int] = ..., reserved_now: _Optional[int] = ..., occupied_now: _Optional[int] = ..., with_power: _Optional[int] = ..., with_monitor: _Optional[int] = ..., areas: _Optional[_Iterable[str]] = ..., id: _Optional[int] = ..., timezone: _Optional[str] = ..., open_now: _Optional[bool] = ..., next_change_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetBranchesResponse(_message.Message):
    __slots__ = ("branches",)
    BRANCHES_FIELD_NUMBER: _ClassVar[int]
    branches: _containers.RepeatedCompositeFieldContainer[Branch]
    def __init__(self, branches: _Optional[_Iterable[_Union[Branch, _Mapping]]] = ...) -> None: ...

class WatchSeatsRequest(_message.Message):
    __slots__ = ("branch",)
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    branch: str
    def __init__(self, branch: _Optional[str] = ...) -> None: ...

class SeatAvailabilityEvent(_message.Message):
    __slots__ = ("seat_id", "branch", "available", "status")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    AVAILABLE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    seat_id: int
    branch: str
    available: bool
    status: str
    def __init__(self, seat_id: _Optional[int] = ..., branch: _Optional[str] = ..., available: _Optional[bool] = ..., status: _Optional[str] = ...) -> None: ...

class SeatRef(_message.Message):
    __slots__ = ("id", "branch", "area", "label")
    ID_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    AREA_FIELD_NUMBER: _ClassVar[int]
    LABEL_FIELD_NUMBER: _ClassVar[int]
    id: int
    branch: str
    area: str
    label: str
    def __init__(self, id: _Optional[int] = ..., branch: _Optional[str] = ..., area: _Optional[str] = ..., label: _Optional[str] = ...) -> None: ...

class Reservation(_message.Message):
    __slots__ = ("id", "user_id", "seat_id", "seat", "start_time", "end_time", "status", "created_at", "checked_in_at", "cancelled_at", "cancel_reason", "check_in_opens_at", "check_in_deadline", "offer_expires_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    SEAT_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    CHECKED_IN_AT_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_AT_FIELD_NUMBER: _ClassVar[int]
    CANCEL_REASON_FIELD_NUMBER: _ClassVar[int]
    CHECK_IN_OPENS_AT_FIELD_NUMBER: _ClassVar[int]
    CHECK_IN_DEADLINE_FIELD_NUMBER: _ClassVar[int]
    OFFER_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    user_id: int
    seat_id: int
    seat: SeatRef
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    status: str
    created_at: _timestamp_pb2.Timestamp
    checked_in_at: _timestamp_pb2.Timestamp
    cancelled_at: _timestamp_pb2.Timestamp
    cancel_reason: str
    check_in_opens_at: _timestamp_pb2.Timestamp
    check_in_deadline: _timestamp_pb2.Timestamp
    offer_expires_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., user_id: _Optional[int] = ..., seat_id: _Optional[int] = ..., seat: _Optional[_Union[SeatRef, _Mapping]] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., checked_in_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancelled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cancel_reason: _Optional[str] = ..., check_in_opens_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., check_in_deadline: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., offer_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class CreateReservationRequest(_message.Message):
    __slots__ = ("seat_id", "start_time", "end_time", "idempotency_key")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    IDEMPOTENCY_KEY_FIELD_NUMBER: _ClassVar[int]
    seat_id: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    idempotency_key: str
    def __init__(self, seat_id: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., idempotency_key: _Optional[str] = ...) -> None: ...

class GetReservationRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: int
    def __init__(self, reservation_id: _Optional[int] = ...) -> None: ...

class CheckInRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: int
    def __init__(self, reservation_id: _Optional[int] = ...) -> None: ...

class CheckOutRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: int
    def __init__(self, reservation_id: _Optional[int] = ...) -> None: ...

class CancelReservationRequest(_message.Message):
    __slots__ = ("reservation_id",)
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    reservation_id: int
    def __init__(self, reservation_id: _Optional[int] = ...) -> None: ...

class ExtendReservationRequest(_message.Message):
    __slots__ = ("reservation_id", "end_time")
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    reservation_id: int
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, reservation_id: _Optional[int] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUserReservationsRequest(_message.Message):
    __slots__ = ("user_id", "scope", "status", "limit", "offset")
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    scope: str
    status: str
    limit: int
    offset: int
    def __init__(self, user_id: _Optional[int] = ..., scope: _Optional[str] = ..., status: _Optional[str] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class ReservationList(_message.Message):
    __slots__ = ("items", "total")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Reservation]
    total: int
    def __init__(self, items: _Optional[_Iterable[_Union[Reservation, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class WaitlistEntry(_message.Message):
    __slots__ = ("id", "user_id", "seat_id", "branch", "start_time", "end_time", "status", "position", "offer_expires_at", "reservation_id", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    OFFER_EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_ID_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    user_id: int
    seat_id: int
    branch: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    status: str
    position: int
    offer_expires_at: _timestamp_pb2.Timestamp
    reservation_id: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., user_id: _Optional[int] = ..., seat_id: _Optional[int] = ..., branch: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., status: _Optional[str] = ..., position: _Optional[int] = ..., offer_expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., reservation_id: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class AddToWaitlistRequest(_message.Message):
    __slots__ = ("seat_id", "branch", "start_time", "end_time")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    seat_id: int
    branch: str
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, seat_id: _Optional[int] = ..., branch: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class GetUserWaitlistRequest(_message.Message):
    __slots__ = ("user_id",)
    USER_ID_FIELD_NUMBER: _ClassVar[int]
    user_id: int
    def __init__(self, user_id: _Optional[int] = ...) -> None: ...

class WaitlistList(_message.Message):
    __slots__ = ("items", "total")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[WaitlistEntry]
    total: int
    def __init__(self, items: _Optional[_Iterable[_Union[WaitlistEntry, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class RemoveFromWaitlistRequest(_message.Message):
    __slots__ = ("entry_id",)
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    entry_id: int
    def __init__(self, entry_id: _Optional[int] = ...) -> None: ...

class ClaimOfferRequest(_message.Message):
    __slots__ = ("entry_id",)
    ENTRY_ID_FIELD_NUMBER: _ClassVar[int]
    entry_id: int
    def __init__(self, entry_id: _Optional[int] = ...) -> None: ...

class ClaimOfferResponse(_message.Message):
    __slots__ = ("entry", "reservation")
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    RESERVATION_FIELD_NUMBER: _ClassVar[int]
    entry: WaitlistEntry
    reservation: Reservation
    def __init__(self, entry: _Optional[_Union[WaitlistEntry, _Mapping]] = ..., reservation: _Optional[_Union[Reservation, _Mapping]] = ...) -> None: ...

class NotifyUsersRequest(_message.Message):
    __slots__ = ("seat_id", "start_time", "end_time")
    SEAT_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    END_TIME_FIELD_NUMBER: _ClassVar[int]
    seat_id: int
    start_time: _timestamp_pb2.Timestamp
    end_time: _timestamp_pb2.Timestamp
    def __init__(self, seat_id: _Optional[int] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., end_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class NotifyUsersResponse(_message.Message):
    __slots__ = ("offered",)
    OFFERED_FIELD_NUMBER: _ClassVar[int]
    offered: _containers.RepeatedCompositeFieldContainer[WaitlistEntry]
    def __init__(self, offered: _Optional[_Iterable[_Union[WaitlistEntry, _Mapping]]] = ...) -> None: ...

class Notification(_message.Message):
    __slots__ = ("id", "type", "data_json", "created_at", "read_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    DATA_JSON_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    READ_AT_FIELD_NUMBER: _ClassVar[int]
    id: int
    type: str
    data_json: str
    created_at: _timestamp_pb2.Timestamp
    read_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[int] = ..., type: _Optional[str] = ..., data_json: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., read_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class StreamNotificationsRequest(_message.Message):
    __slots__ = ("after_id",)
    AFTER_ID_FIELD_NUMBER: _ClassVar[int]
    after_id: int
    def __init__(self, after_id: _Optional[int] = ...) -> None: ...

class ListNotificationsRequest(_message.Message):
    __slots__ = ("unread_only", "limit", "offset")
    UNREAD_ONLY_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    OFFSET_FIELD_NUMBER: _ClassVar[int]
    unread_only: bool
    limit: int
    offset: int
    def __init__(self, unread_only: _Optional[bool] = ..., limit: _Optional[int] = ..., offset: _Optional[int] = ...) -> None: ...

class NotificationList(_message.Message):
    __slots__ = ("items", "total")
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[Notification]
    total: int
    def __init__(self, items: _Optional[_Iterable[_Union[Notification, _Mapping]]] = ..., total: _Optional[int] = ...) -> None: ...

class MarkNotificationReadRequest(_message.Message):
    __slots__ = ("notification_id",)
    NOTIFICATION_ID_FIELD_NUMBER: _ClassVar[int]
    notification_id: int
    def __init__(self, notification_id: _Optional[int] = ...) -> None: ...
