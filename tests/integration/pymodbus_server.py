"""A Modbus server on Debian's pymodbus (not our code): the scan tests' second, independent device.

Usage: pymodbus_server.py (--tcp PORT | --rtu DEVICE --baud B --parity N|E|O) --units 3,17
                          [--vendor V --product P --revision R]
Each unit holds holding and input registers 0..99 (register i = unit * 100 + i) and answers
Read Device Identification (FC 43/14) with the vendor, product code and revision given. Units not
listed are not answered at all (as on a serial line; on TCP as a unit id nobody answers for).
Prints "ready" once the listening socket or device is open.
"""
import argparse
import asyncio
import sys

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.device import ModbusDeviceIdentification
from pymodbus.server.async_io import ModbusSerialServer, ModbusTcpServer
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tcp", type=int)
    ap.add_argument("--rtu")
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--parity", default="N")
    ap.add_argument("--units", required=True)
    ap.add_argument("--vendor", default="")
    ap.add_argument("--product", default="")
    ap.add_argument("--revision", default="1.0")
    args = ap.parse_args()
    slaves = {}
    for u in (int(x) for x in args.units.split(",")):
        block = ModbusSequentialDataBlock(0, [u * 100 + i for i in range(100)])
        slaves[u] = ModbusSlaveContext(hr=block, ir=ModbusSequentialDataBlock(0, [u * 100 + i for i in range(100)]),
                                       zero_mode=True)
    context = ModbusServerContext(slaves=slaves, single=False)
    identity = None
    if args.vendor:
        identity = ModbusDeviceIdentification(info_name={"VendorName": args.vendor, "ProductCode": args.product,
                                                         "MajorMinorRevision": args.revision})

    async def run():
        if args.tcp:
            server = ModbusTcpServer(context, ModbusSocketFramer, identity, ("127.0.0.1", args.tcp),
                                     ignore_missing_slaves=True)
        else:
            server = ModbusSerialServer(context, ModbusRtuFramer, identity=identity, port=args.rtu,
                                        baudrate=args.baud, parity=args.parity, ignore_missing_slaves=True)
            await server.start()
        print("ready", flush=True)
        await server.serve_forever()

    asyncio.run(run())


if __name__ == "__main__":
    sys.exit(main())
