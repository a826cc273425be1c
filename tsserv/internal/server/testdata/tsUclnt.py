#!/usr/bin/env python3
"""tsUclnt.py: the chapter's UDP timestamp client, in Python 3.

Each message is one datagram sent with sendto(); one recvfrom(BUFSIZ)
brings the reply, which is printed:

    tsUclnt.py HOST PORT MESSAGE...

A HOST with a colon is an IPv6 address.
"""

import sys
from socket import *

HOST = sys.argv[1]
PORT = int(sys.argv[2])
BUFSIZ = 1024
ADDR = (HOST, PORT)

udpCliSock = socket(AF_INET6 if ':' in HOST else AF_INET, SOCK_DGRAM)

for data in sys.argv[3:]:
    udpCliSock.sendto(data.encode('utf-8'), ADDR)
    data, ADDR = udpCliSock.recvfrom(BUFSIZ)
    if not data:
        break
    print(data.decode('utf-8'))

udpCliSock.close()
