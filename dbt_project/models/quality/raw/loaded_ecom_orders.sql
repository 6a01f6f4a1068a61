{{ loaded_rows(source('ecom', 'ecom_orders'), 'ecom_orders') }}
