"""The factory: device lists, batch provisioning, encrypted transport, flashing devices.

Modules: `devicelist` (the standard CSV and JSON, strict reader), `batch`
(parameters for N devices, serial numbers that never overlap), `sealed`
(authenticated encryption of a device list for transport), `flash` (writing
devices over the device protocol with read-back).
"""
