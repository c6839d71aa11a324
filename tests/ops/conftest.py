"""Operations tests: real processes (uvicorn, ``dlsms serve``, nginx, a private Redis, a
private PostgreSQL) started, broken and stopped by the tests themselves."""

from tests.realtime.servers import servers as servers
